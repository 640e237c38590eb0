"""Launcher for `hf-asl train` under `accelerate launch` or `torchrun`, which start a script file.

    accelerate launch --num_processes 2 scripts/train.py --data mini_ndec --out runs/asl
    torchrun --nproc_per_node 2 scripts/train.py --data mini_ndec --out runs/asl
"""

import sys

from hf_asl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
