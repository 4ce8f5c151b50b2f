from driftline.cli import main

# Guarded: a child process started with *spawn* (processors.calibration_pool)
# imports the parent's main module again, and must not run the CLI.
if __name__ == "__main__":
    main()
