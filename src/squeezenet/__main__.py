try:
    from .cli import run
except KeyboardInterrupt:   # Ctrl-C before the CLI is even imported: one line, as later
    import sys
    sys.stderr.write("\nsqueezenet: interrupted\n")
    sys.exit(130)

run()
