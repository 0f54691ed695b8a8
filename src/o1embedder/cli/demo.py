"""``o1emb demo``: the whole method end to end on a built-in synthetic world, on CPU, in minutes."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline end to end on a synthetic world (CPU, minutes)",
                       description=__doc__)
    p.add_argument("--out", default="o1emb-demo", help="output folder (default: o1emb-demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the world, the data and the model (default 0)")
    p.add_argument("--epochs", type=float, default=None, help="training epochs (default 60)")
    p.add_argument("--small", action="store_true", help="a shrunken world and a short training (a quick check)")
    p.add_argument("--validation", action="store_true",
                   help="evaluate on validation queries carved from the training works, not the test split "
                        "(for choosing settings; see docs/demo.md)")
    p.add_argument("--rl", action="store_true",
                   help="add an RL stage after training (GRPO on thoughts, docs/rl.md) and report its model too")
    p.add_argument("--think-share", type=float, default=None,
                   help="o1-auto's target share of thinking queries (the learned policy's knob; default 0.9, chosen on validation: docs/demo.md)")
    p.add_argument("--rl-resample", type=int, default=None,
                   help="with --rl: rounds of redrawing a rollout row whose thoughts are all alike (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default; the documented figures) or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="float32 (default) or bfloat16 (bf16 autocast in training, bf16 weights after it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoConfig, run_demo
    from ..demo.report import table

    config = DemoConfig(out=args.out, seed=args.seed, validation=args.validation, rl=args.rl, device=args.device,
                        dtype=args.dtype)
    if args.small:
        config.n_people, config.works_per_person, config.n_cities, config.epochs = 8, 3, 4, 4.0
    if args.epochs is not None:
        config.epochs = args.epochs
    if args.think_share is not None:
        config.think_share = args.think_share
    if args.rl_resample is not None:
        config.rl_resample = args.rl_resample
    report = run_demo(config)
    print()
    print(table(report))
    print(f"\ncommittee accuracy: {100 * report['committee_accuracy']:.1f}%")
    if "thoughts_exactly_right" in report:
        right = report["thoughts_exactly_right"]
        print(f"thoughts exactly right on {report['thoughts_total']} held-out queries: after training "
              f"{right['sft']}, after RL {right['rl']}")
    for ex in report["examples"]:
        print(f"\nquery:   {ex['query']}\nthought: {' / '.join(ex['thoughts'])}")
        for d in ex["top"]:
            print(f"  {'+' if d['relevant'] else '-'} {d['score']:.3f}  {d['text']}")
    times = ", ".join(f"{k} {v:.0f}s" for k, v in report["stage_seconds"].items())
    print(f"\nstages: {times}; total {report['total_seconds']:.0f}s")
    print(f"report: {args.out}/report.md, {args.out}/report.json, {args.out}/report.png")
    print(f"try:    o1emb search --index {args.out}/index \"{report['examples'][0]['query'] if report['examples'] else 'query'}\"")
    return 0
