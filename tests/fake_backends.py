"""Back ends for bridge tests that need one without a network: what they return is what they were given."""


class IdentityBackend:
    """Returns every batch unchanged."""

    name = model = "identity"
    size_multiple = 16

    def denoise(self, batch):
        return batch


class NamedBackend(IdentityBackend):
    """An identity back end named after the model it was asked to load (``set_model``'s loader)."""

    name = "fake"

    def __init__(self, model):
        self.model = model
