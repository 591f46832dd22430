"""`automot train` (and `python -m automot_ros.train`, the form torchrun starts):

    automot train --config tiny --data DIR [DIR ...] --out OUT [--stage all|projector,ae,answer] [--steps N]
                  [--batch B] [--lr LR] [--resume] [--seed S] [--init CKPT [--init-parts PART,...]]
                  [--ae-train-parts PART,...]
    torchrun --nproc_per_node 2 -m automot_ros.train --config tiny --data DIR --out OUT
"""

from __future__ import annotations

import argparse
import sys

from automot_ros.train.defaults import (
    DEFAULT_AGENT_CLEARANCE_MARGIN_M,
    DEFAULT_AGENT_CLEARANCE_WEIGHT,
    DEFAULT_BATCH,
    DEFAULT_LR,
    DEFAULT_STEPS,
    DEFAULT_UE_PERIOD_S,
    STAGES,
)

DESCRIPTION = (
    "Train AutoMoT's trained parts in stages: 'projector' (next-token CE on the QA answers through "
    "the frozen UE decoder; trains the projector), 'ae' (the release's AE losses plus an agent-clearance "
    "term on UE contexts computed once and cached; trains the Action Expert) and, for configs with an "
    "answer adapter, 'answer' (the same CE; trains the adapter on the question and answer tokens, "
    "contexts unchanged). Writes OUT/train_log.csv and .png, "
    "OUT/checkpoints/ (last.safetensors + last.state.pt for --resume), OUT/model.safetensors and the "
    "release file OUT/<config>.fp16.safetensors. Under torchrun (WORLD_SIZE > 1) it trains data-"
    "parallel: DDP (gloo on CPU, nccl on GPU), FSDP for the automot-b2d shapes; --batch is the global "
    "batch. Seeds fix the initialization and the batch order.")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="smol", help="model config name or YAML path (default: %(default)s)")
    parser.add_argument("--data", required=True, nargs="+", metavar="DIR",
                        help="one or more collected dataset directories (automot data collect), pooled, each with "
                             "its own context cache; or synthetic[:N] (in-memory test data, not driving)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--stage", default="all",
                        help="all, or the stages to run, comma-separated, of %s (run in that order; "
                             "default: %%(default)s)" % ",".join(STAGES))
    parser.add_argument("--steps", type=int, help="steps per stage (default: projector %d, ae %d, answer %d)"
                        % (DEFAULT_STEPS["projector"], DEFAULT_STEPS["ae"], DEFAULT_STEPS["answer"]))
    parser.add_argument("--projector-steps", type=int, help="steps of the projector stage (overrides --steps)")
    parser.add_argument("--ae-steps", type=int, help="steps of the AE stage (overrides --steps)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="global batch per step (default: %(default)s)")
    parser.add_argument("--answer-steps", type=int, help="steps of the answer stage (overrides --steps)")
    parser.add_argument("--text-batch", "--projector-batch", dest="text_batch", type=int,
                        help="global batch of the text stages, projector and answer (default: --batch)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: projector %g, ae %g, answer %g)"
                        % (DEFAULT_LR["projector"], DEFAULT_LR["ae"], DEFAULT_LR["answer"]))
    parser.add_argument("--agent-clearance-weight", type=float, default=DEFAULT_AGENT_CLEARANCE_WEIGHT,
                        help="weight of the AE's agent-clearance loss (ours, not the release's: how deep the plan "
                             "drives into ground-truth agents; 0 trains with the release's losses only; "
                             "default: %(default)s)")
    parser.add_argument("--agent-clearance-margin", type=float, default=DEFAULT_AGENT_CLEARANCE_MARGIN_M,
                        help="the agent-clearance loss grows the agents by this margin [m] (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW (default: %(default)s)")
    parser.add_argument("--warmup-steps", type=int, default=50, help="(default: %(default)s, at most 10%% of a stage)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.*")
    parser.add_argument("--init", help="start from this checkpoint's trained parts")
    parser.add_argument("--init-parts", metavar="PART[,PART...]",
                        help="with --init, take only these trained parts from it (smol: projector, ae, "
                             "answer_adapter); the others start fresh from --seed, e.g. 'projector,answer_adapter' "
                             "trains a new AE on a released UE (default: all)")
    parser.add_argument("--ae-train-parts", metavar="PART[,PART...]",
                        help="the AE stage trains only these parts of the AE (e.g. 'waypoint_head': the "
                             "waypoints move, the path and the decisions stay as --init gave them; "
                             "default: the whole AE)")
    parser.add_argument("--split", default="train", help="training split of each dataset (default: %(default)s)")
    parser.add_argument("--eval-split", default="heldout",
                        help="AE metrics on this split after the AE stage ('' to skip; default: %(default)s)")
    parser.add_argument("--ue-period", type=float, default=DEFAULT_UE_PERIOD_S,
                        help="UE context period [s] for the cache's context/sample pairing (default: %(default)s)")
    parser.add_argument("--cache-dir", help="context cache root (default: OUT/cache)")
    parser.add_argument("--ckpt-every", type=int, default=100, help="checkpoint period [steps] (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per process (default: CPU cores / processes on this machine)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers per process (default: %(default)s)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    fsdp = parser.add_mutually_exclusive_group()
    fsdp.add_argument("--fsdp", dest="fsdp", action="store_true", default=None, help="shard with FSDP2")
    fsdp.add_argument("--no-fsdp", dest="fsdp", action="store_false", help="DDP even for large shapes")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="stop after N optimizer steps of this run, checkpointed (time-boxed chunks; "
                             "--resume continues)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-release", action="store_true", help="skip the fp16 release file")


def options_from_args(args):
    from automot_ros.train.losses import ActionLossConfig
    from automot_ros.train.trainer import TrainOptions

    return TrainOptions(
        config=args.config, data=args.data, out=args.out, stage=args.stage, steps=args.steps,
        projector_steps=args.projector_steps, ae_steps=args.ae_steps, answer_steps=args.answer_steps,
        batch=args.batch, text_batch=args.text_batch, lr=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, seed=args.seed, resume=args.resume,
        init=args.init, init_parts=args.init_parts.split(",") if args.init_parts else None,
        ae_train_parts=args.ae_train_parts.split(",") if args.ae_train_parts else None, split=args.split,
        eval_split=args.eval_split or None, ue_period_s=args.ue_period,
        cache_dir=args.cache_dir, ckpt_every=args.ckpt_every, threads=args.threads, workers=args.workers,
        device=args.device, fsdp=args.fsdp, progress=not args.no_progress, release=not args.no_release,
        stop_after=args.stop_after, ae_loss=ActionLossConfig(
            agents=args.agent_clearance_weight, agent_margin_m=args.agent_clearance_margin))


def cmd_train(args) -> int:
    from automot_ros.train.trainer import train

    try:
        opts = options_from_args(args)
    except ValueError as error:
        raise SystemExit(f"automot train: {error}")
    train(opts)
    return 0


def add_train_parser(commands) -> None:
    """Add ``train`` to the ``automot`` subcommands."""
    parser = commands.add_parser("train", help="train the projector, the Action Expert and the answer adapter "
                                               "(torchrun-ready)",
                                 description=DESCRIPTION)
    add_train_arguments(parser)
    parser.set_defaults(func=cmd_train)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automot_ros.train", description=DESCRIPTION)
    add_train_arguments(parser)
    return cmd_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
