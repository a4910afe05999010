"""The simulator's version (``SIMULATOR_VERSION``, recorded with every set of weights) names what its seeds draw.

A change to the simulator that changes what a seed draws must bump the version, or weights trained on two different
simulators would claim the same one and evaluation tables could not be reproduced. The fingerprint below is what
seed 3 draws per family at 64 x 64 (the clean surface's and the noisy scan's rms, in pm) under the current version,
and from version 6 on the same seed drawn with both passes (the trace's and the retrace's rms): a simulator change
fails this test until the version is bumped and the fingerprint written anew for it.
"""

import numpy as np
import pytest

from maed.data import FAMILIES, SIMULATOR_VERSION, make_pair

FINGERPRINTS = {
    "maed.data 3": {
        "lattice": (247.450540, 342.968351),
        "multi_atom": (6.428507, 137.163024),
        "molecular_crystal": (7.317935, 113.533231),
        "steps": (301.273932, 270.392491),
        "adsorbates": (79.864250, 99.023306),
        "standing_waves": (3.214739, 45.369604),
        "moire": (5.816058, 62.371382),
        "kagome": (8.467245, 65.971149),
    },
    "maed.data 4": {
        "lattice": (237.206783, 334.251170),
        "multi_atom": (6.428507, 137.163024),
        "molecular_crystal": (7.317935, 113.533231),
        "steps": (311.383104, 281.798072),
        "adsorbates": (79.864250, 99.023306),
        "standing_waves": (3.214739, 45.369604),
        "moire": (5.816058, 62.371382),
        "kagome": (8.467245, 65.971149),
    },
    "maed.data 5": {
        "lattice": (237.206783, 336.155557),
        "multi_atom": (6.496343, 137.061453),
        "molecular_crystal": (7.317935, 112.676026),
        "steps": (311.383104, 280.605002),
        "adsorbates": (79.864250, 97.167879),
        "standing_waves": (3.214739, 46.516327),
        "moire": (5.816058, 62.617308),
        "kagome": (8.464356, 65.200544),
    },
}
# Version 6 drew the slow axis ramped during the lines on half the pairs recorded with both passes
# (two_pass.PassParams.slow_lines); single-pass draws stayed as version 5 drew them.
FINGERPRINTS["maed.data 6"] = FINGERPRINTS["maed.data 5"]
TWO_PASS_FINGERPRINTS = {
    "maed.data 6": {
        "lattice": (312.748058, 308.293664),
        "multi_atom": (132.802349, 134.408518),
        "molecular_crystal": (119.937760, 119.230647),
        "steps": (273.774993, 275.840178),
        "adsorbates": (104.565551, 103.463132),
        "standing_waves": (49.927918, 48.129110),
        "moire": (61.394256, 59.165092),
        "kagome": (82.049042, 81.386836),
    },
}


def test_the_version_has_a_fingerprint():
    for prints in (FINGERPRINTS, TWO_PASS_FINGERPRINTS):
        assert SIMULATOR_VERSION in prints, f"{SIMULATOR_VERSION} has no fingerprint: write one for it here"
        assert set(prints[SIMULATOR_VERSION]) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_seeds_draw_what_the_version_says(family):
    pair = make_pair(3, 64, families=(family,))
    drawn = (float(pair.clean.std()) * 1e12, float(pair.noisy.std()) * 1e12)
    assert np.allclose(drawn, FINGERPRINTS[SIMULATOR_VERSION][family], rtol=1e-5), (
        f"seed 3 of {family} draws {drawn} pm, not what {SIMULATOR_VERSION} drew: a simulator change must bump "
        "SIMULATOR_VERSION (maed.data) and write its fingerprint here"
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_seeds_draw_both_passes_as_the_version_says(family):
    pair = make_pair(3, 64, families=(family,), both_passes=True)
    drawn = (float(pair.noisy.std()) * 1e12, float(pair.retrace.std()) * 1e12)
    assert np.allclose(drawn, TWO_PASS_FINGERPRINTS[SIMULATOR_VERSION][family], rtol=1e-5), (
        f"seed 3 of {family} draws passes of {drawn} pm, not what {SIMULATOR_VERSION} drew: a simulator change must "
        "bump SIMULATOR_VERSION (maed.data) and write its fingerprint here"
    )
