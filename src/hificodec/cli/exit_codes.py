"""hfc's exit codes, as the README's "Exit codes" table documents them."""

EXIT_OK = 0  # everything converted (or skipped as already complete)
EXIT_FAILED = 1  # at least one input failed; the others were converted
EXIT_USAGE = 2  # bad option or argument (click's own usage errors exit 2 too)
EXIT_MODEL = 3  # the requested model cannot be loaded
EXIT_INTERRUPTED = 130  # Ctrl-C; no partial outputs are left
