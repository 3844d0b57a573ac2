"""``callscreen keys status|add|rotate``: several versions of each key, one in force."""

from __future__ import annotations

import argparse
import json
import os
import secrets
from typing import Any

from callscreen.cli.context import EXIT_INPUT, EXIT_OK, CliContext, CliError
from callscreen.config import ENV_PREFIX, secret_file
from callscreen.keys import KEY_ID, Keyring, KeyringError

KINDS = {"log": "log_key", "encryption": "encryption_key", "hash": "hash_key"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("keys", help="key rings and key rotation without downtime")
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    status = commands.add_parser("status", help="configured key ids and the one in force, per key")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(handler=keys_status)
    add = commands.add_parser("add", help="generate a new key into the key's file (not the one in force yet)")
    add.add_argument("kind", choices=sorted(KINDS), help="which key ring")
    add.add_argument("--id", help="id of the new key (default: its fingerprint)")
    add.set_defaults(handler=add_key)
    rotate = commands.add_parser("rotate", help="put the newest key of a ring in force, while screening goes on")
    rotate.add_argument("kind", choices=sorted(KINDS), help="which key ring")
    rotate.add_argument("--to", metavar="ID", help="the key to put in force (default: the newest of the ring)")
    rotate.set_defaults(handler=rotate_key)


def _ring(context: CliContext, kind: str) -> Keyring:
    return context.settings.require_secrets().keyring(KINDS[kind])


def keys_status(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.rotation import KeyState, state_key

    log_ring = _ring(context, "log")
    status: dict[str, dict[str, Any]] = {
        "log": {"configured": list(log_ring.ids), "in_force": context.log.epoch()}}
    epochs = context.log.epochs()
    if len(epochs) > 1:  # each shard of the log has its own epoch; a rotation cut short leaves them apart
        status["log"]["shards"] = {str(index): kid for index, kid in epochs.items()}
    for kind in ("encryption", "hash"):
        ring = _ring(context, kind)
        view = KeyState(kind, ring, context.client).view()
        raw = {k.decode(): v.decode() for k, v in context.client.hgetall(state_key(kind)).items()}
        status[kind] = {"configured": list(ring.ids), "in_force": view.active, "retiring": view.retiring,
                        "retired": sorted(view.retired), "phase": view.phase, "moved": int(raw.get("moved", 0)),
                        "kept_for_erasures": list(view.erasure)}
    if args.json:
        print(json.dumps(status))
        return EXIT_OK
    for kind, info in status.items():
        line = f"{kind:10} in force {info['in_force']:14} configured {', '.join(info['configured'])}"
        if info.get("phase"):
            line += f"; {info['phase']} from {info['retiring']} ({info['moved']} moved so far)"
        shards = info.get("shards", {})
        if len(set(shards.values())) > 1:  # in force is the oldest key any shard still uses
            behind = [index for index, kid in shards.items() if kid == info["in_force"]]
            line += (f"; rotation unfinished: shards {', '.join(behind)} still on it "
                     "(run `callscreen keys rotate log` again)")
        if info.get("retired"):
            line += f"; retired {', '.join(info['retired'])}"
        if info.get("kept_for_erasures"):
            line += f" ({', '.join(info['kept_for_erasures'])} kept only to find erased persons)"
        print(line)
    return EXIT_OK


def add_key(args: argparse.Namespace, context: CliContext) -> int:
    name = KINDS[args.kind]
    path = secret_file(name, os.environ, context.settings.data_dir)
    if path is None:
        env = ENV_PREFIX + name.upper()
        raise CliError(f"{env} is set in the environment: add a new 'ID:KEY' entry to it (hex or base64), "
                       f"or use {env}_FILE", EXIT_INPUT)
    if args.id is not None and not KEY_ID.match(args.id):
        raise CliError(f"--id {args.id!r}: 1-32 of A-Z a-z 0-9 _ . -", EXIT_INPUT)
    material = secrets.token_bytes(32)
    ring = _ring(context, args.kind)
    try:
        entry = Keyring(name, ((args.id or "", material),)) if args.id else Keyring.single(name, material)
        Keyring(name, (*ring.entries, *entry.entries))  # refuses a duplicate id
    except KeyringError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    text = path.read_text() if path.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + entry.format())
    print(f"added {args.kind} key {entry.newest} to {path}; restart every process so each has it, "
          f"then run: callscreen keys rotate {args.kind}")
    return EXIT_OK


def rotate_key(args: argparse.Namespace, context: CliContext) -> int:
    if args.kind == "log":
        return _rotate_log(args, context)
    if args.kind == "hash":
        return _rotate_hash(args, context)
    from callscreen.rotation import EncryptionRotation, RotationError

    vault = context.store.vault
    job = EncryptionRotation(context.client, vault, vault.masters.state)
    try:
        progress = job.start(args.to)
        print(f"encryption key {progress.new} is in force for new data keys; re-wrapping the others "
              f"(from {progress.old})", flush=True)
        progress = job.run(progress)
    except RotationError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    context.log.append_summary("key_rotation", {"key": args.kind, "from": progress.old, "to": progress.new,
                                                "rewrapped": progress.moved})
    print(f"re-wrapped {progress.moved} data keys in {progress.passes} passes; encryption key {progress.old} is "
          f"retired: no process uses it again and nothing in the store is wrapped under it. Remove it from "
          f"CALLSCREEN_ENCRYPTION_KEY everywhere (backups made before now still need it)")
    return EXIT_OK


def _rotate_hash(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.rotation import HashRotation, RotationError

    job = HashRotation(context.store, context.log, context.store.vault.hashes.state)
    try:
        progress = job.start(args.to)
        print(f"hash key {progress.new} is in force; facts are read under both keys while every person is "
              f"moved from {progress.old}", flush=True)
        progress = job.run(progress)
    except RotationError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    kept = progress.old in context.store.vault.hashes.state.view().erasure
    context.log.append_summary("key_rotation", {"key": args.kind, "from": progress.old, "to": progress.new,
                                                "moved": progress.moved, "kept_for_erasures": kept})
    print(f"moved {progress.moved} persons in {progress.passes} passes; hash key {progress.old} is retired"
          + (": it is kept only to find erased persons, whose numbers are gone and cannot be moved" if kept else
             ": no digest in the store is made with it any more")
          + ". Keep the ring's first key configured: consent ids made from imported rows stay keyed by it")
    return EXIT_OK


def _rotate_log(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.journal import AccessJournal

    ring = _ring(context, args.kind)
    target = args.to or ring.newest
    journal = AccessJournal(context.client, ring)
    old = context.log.epoch()
    if old == target and journal.epoch() == target:
        raise CliError(f"log key {target} is already in force; add a new key to the ring first "
                       f"(callscreen keys add {args.kind})", EXIT_INPUT)
    try:
        if old != target:
            context.log.rotate_key(target)
        journal.rotate_key(target)  # the journal's chain follows the same key (again, if a run was cut short)
    except KeyringError as exc:
        raise CliError(f"{exc}; add it to the ring of every process first", EXIT_INPUT) from exc
    context.log.append_summary("key_rotation", {"key": args.kind, "from": old, "to": target})
    print(f"log key {target} is in force (was {old}); records under {old} still verify with it: keep it "
          f"in the ring as long as such records are kept; nothing more can be written under it")
    return EXIT_OK
