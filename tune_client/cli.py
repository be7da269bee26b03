"""``tune``: operator commands against a running head.

    tune status                  workers and their resources, experiments and trials
    tune stop EXPERIMENT         stop an experiment by name or id
    tune drain WORKER            move a worker's trials elsewhere and let it exit

Each takes --address and --token, defaulting to TUNE_ADDRESS and TUNE_TOKEN.
"""

from __future__ import annotations

import argparse
import os
import sys

from tune_client.cluster import HeadClient
from tune_client.errors import TuneError
from tune_client.trainable import format_resources


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tune", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--address", default=os.environ.get("TUNE_ADDRESS"))
    parser.add_argument("--token", default=os.environ.get("TUNE_TOKEN", ""))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="show workers, resources and experiments")
    stop = commands.add_parser("stop", help="stop an experiment")
    stop.add_argument("experiment", help="experiment name or id")
    drain = commands.add_parser("drain", help="move a worker's trials and stop it")
    drain.add_argument("worker", help="worker id, as `tune status` lists it")
    return parser


def print_status(client: HeadClient) -> None:
    status = client.status()
    print(f"Workers ({len(status.workers)}):")
    for worker in status.workers:
        print(
            f"  {worker.worker_id} on {worker.hostname}: "
            f"total {format_resources(worker.total)}; "
            f"free {format_resources(worker.free)}; "
            f"{len(worker.trial_ids)} trials running"
        )
    print(f"Experiments ({len(status.experiments)}):")
    for exp in status.experiments:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(exp.trials_by_status.items()))
        state = "finished" if exp.finished else "running"
        print(f"  {exp.name} [{state}] {counts or 'no trials yet'}\n    {exp.path}")
        if exp.pending_reason:
            print(f"    pending trials wait: {exp.pending_reason}")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if not args.address:
        sys.exit("tune: no head address; pass --address HOST:PORT or set TUNE_ADDRESS")
    client = HeadClient(args.address, args.token, embedded=None)
    try:
        client.wait_ready()
        if args.command == "status":
            print_status(client)
        elif args.command == "stop":
            client.stop_experiment(args.experiment)
            print(f"stopping experiment {args.experiment}")
        elif args.command == "drain":
            moved = client.drain_worker(args.worker)
            print(f"draining worker {args.worker}: {len(moved)} trials move elsewhere")
    except TuneError as exc:
        sys.exit(f"tune: {exc}")
    finally:
        client.close()


if __name__ == "__main__":
    main()
