"""Build glue for the one optional C extension (everything else is in pyproject.toml).

aiki_hooks/costs/_scanner.c speeds up the first scan of Claude Code transcripts; where
it cannot be built (no C compiler or Python headers) the install goes on without it and
the same scan runs in Python (`aiki-hooks doctor` says which one is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "aiki_hooks.costs._scanner",
            ["aiki_hooks/costs/_scanner.c"],
            optional=True,
            # -ffp-contract=off: costs are the same doubles as PriceBook.cost computes.
            extra_compile_args=["-O2", "-std=c99", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers"],
        )
    ],
)
