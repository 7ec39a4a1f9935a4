"""The paper's study (Tables 4-7, Figures 4-5) as one resumable driver: ``python -m reproduction --scale cpu``.

See reproduction/RESULTS.md for what it measured and reproduction/README.md for how to run it.
"""
