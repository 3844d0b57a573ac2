"""``callscreen user add|passwd|disable`` and ``callscreen token add|list|revoke``.

Passwords are read from the terminal (or, for scripts, one line on standard input with
``--password-stdin``); they never appear on the command line or in shell history. A new API
token is printed once and stored only as its hash.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from callscreen.cli.context import EXIT_INPUT, EXIT_OK, CliContext, CliError


def register(subparsers: Any) -> None:
    from dashboard.users import ROLES

    user = subparsers.add_parser("user", help="dashboard accounts")
    actions = user.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="create an account")
    add.add_argument("name", help="account name")
    add.add_argument("--role", required=True, choices=ROLES, help="what the account may do (docs/dashboard.md)")
    add.add_argument("--locale", choices=("en", "ru"), default="",
                     help="interface language (default: the browser's)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(handler=user_add)
    passwd = actions.add_parser("passwd", help="set a new password (ends the account's sessions)")
    passwd.add_argument("name", help="account name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    passwd.set_defaults(handler=user_passwd)
    disable = actions.add_parser("disable", help="disable an account (ends its sessions)")
    disable.add_argument("name", help="account name")
    disable.add_argument("--enable", action="store_true", help="enable it again instead")
    disable.set_defaults(handler=user_disable)
    listing = actions.add_parser("list", help="list accounts")
    listing.set_defaults(handler=user_list)

    token = subparsers.add_parser("token", help="intake API tokens")
    actions = token.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="create a token for a client system (printed once)")
    add.add_argument("client", help="name of the client system the token is for")
    add.set_defaults(handler=token_add)
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(handler=token_list)
    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", help="token id (from token list)")
    revoke.set_defaults(handler=token_revoke)


def _password(args: argparse.Namespace) -> str:
    """The new password, checked against the rules before it is asked for a second time."""
    from dashboard.users import MIN_PASSWORD, UserError, check_password

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass(f"Password (at least {MIN_PASSWORD} characters): ")
    try:
        check_password(password)
    except UserError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    if getpass.getpass("Again: ") != password:
        raise CliError("the passwords differ", EXIT_INPUT)
    return password


def _users(context: CliContext) -> Any:
    from dashboard.users import UserStore

    return UserStore(context.client)


def _tokens(context: CliContext) -> Any:
    from dashboard.tokens import TokenStore

    return TokenStore(context.client)


def user_add(args: argparse.Namespace, context: CliContext) -> int:
    from dashboard.users import UserError

    try:
        user = _users(context).add(args.name, _password(args), args.role, args.locale)
    except UserError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(f"added {user.name} ({user.role})")
    return EXIT_OK


def user_passwd(args: argparse.Namespace, context: CliContext) -> int:
    from dashboard.users import UserError

    try:
        user = _users(context).set_password(args.name, _password(args))
    except UserError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(f"password changed for {user.name}; open sessions ended")
    return EXIT_OK


def user_disable(args: argparse.Namespace, context: CliContext) -> int:
    from dashboard.users import UserError

    try:
        user = _users(context).set_disabled(args.name, not args.enable)
    except UserError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(f"{user.name} {'disabled; open sessions ended' if user.disabled else 'enabled'}")
    return EXIT_OK


def user_list(args: argparse.Namespace, context: CliContext) -> int:
    for user in _users(context).all():
        print(f"{user.name}\t{user.role}\t{'disabled' if user.disabled else 'active'}\t{user.locale or '-'}")
    return EXIT_OK


def token_add(args: argparse.Namespace, context: CliContext) -> int:
    from dashboard.tokens import TokenError

    try:
        record, secret = _tokens(context).add(args.client)
    except TokenError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(f"token {record.id} for {record.client} (shown once, keep it secret):", file=sys.stderr)
    print(secret)
    return EXIT_OK


def token_list(args: argparse.Namespace, context: CliContext) -> int:
    for token in _tokens(context).list():
        print(f"{token.id}\t{token.client}\t{token.created_at[:19]}\t{token.last_used_at[:19] or '-'}")
    return EXIT_OK


def token_revoke(args: argparse.Namespace, context: CliContext) -> int:
    from dashboard.tokens import TokenError

    try:
        token = _tokens(context).revoke(args.token_id)
    except TokenError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(f"revoked {token.id} ({token.client})")
    return EXIT_OK
