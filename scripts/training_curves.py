"""Each released checkpoint's training curve, from results/weights/MANIFEST.json:

    python scripts/training_curves.py [results/weights] [--out curves.png]

(regbench.results.training_curves; `regbench release` writes the same into results/training_curves/)."""

from regbench.results.training_curves import main

if __name__ == "__main__":
    main()
