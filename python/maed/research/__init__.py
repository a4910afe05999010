"""Research code: how well the denoiser does, and the figures and tables that show it.

``maed eval`` (the simulated test sets, the families, the real scans: ``evaluate``,
``evaluate_families``, ``evaluate_real``, with BM3D as a reference in ``bm3d_eval``), the paper's
comparison of architectures (``compare``), the trust guard's calibration (``guard_calibration``),
the latency benchmarks' runner ``maed bench`` (``bench``) and the figures (``plots``,
``plots_real``). The product path (scan files, levelling, tiling, back ends, the bridge, the guard,
``maed denoise``, ``maed serve``, ``maed adapt``) never imports this package (an import contract,
``docs/architecture.md``); the command line imports it when one of these commands runs, and
``maed demo`` for its report's figures.
"""
