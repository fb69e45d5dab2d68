"""Repository root: keeps the harness importable from a plain checkout.

The harness's pytest plugin is registered through the `pytest11` entry point of the installed
package (`pip install -e .`); the acceptance suite lives in `scenarios/`, the harness's own tests
in `tests/`.
"""
