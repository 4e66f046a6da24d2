"""CLI for the people who sign in to the web pages."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from leadwatch.cli_support import fail, load_settings, now, out

user_app = typer.Typer(help="Users of the web pages: create and list.", no_args_is_help=True)


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Sign-in address.")],
    role: Annotated[str, typer.Option(help="admin, manager or rep.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="At least 10 characters (asked for when not given).",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    dealership: Annotated[
        str | None, typer.Option(help="The dealership a manager or rep works at.")
    ] = None,
    person: Annotated[
        str | None, typer.Option(help="Their key in the escalation directory (in-app inbox).")
    ] = None,
) -> None:
    """Create a user. Passwords are stored as argon2 hashes only."""
    from sqlalchemy import select

    from leadwatch.cli import _engine
    from leadwatch.db.engine import make_session_factory, unit_of_work
    from leadwatch.leads.models import Dealership
    from leadwatch.users import service

    factory = make_session_factory(_engine(load_settings()))
    try:
        with unit_of_work(factory) as db_session:
            dealer_id = None
            if dealership:
                dealer_id = db_session.scalars(
                    select(Dealership.id).where(Dealership.name == dealership)
                ).first()
                if dealer_id is None:
                    raise fail(f"no dealership {dealership!r} (see `leadwatch dealership list`)")
            user = service.create_user(
                db_session=db_session,
                email=email,
                password=password,
                role=role,
                name=name,
                dealership_id=dealer_id,
                person_key=person,
                now=now(),
            )
            out.print(f"user {user.id} created: {user.email} ({user.role})", highlight=False)
    except service.UserError as exc:
        raise fail(str(exc)) from None


@user_app.command("list")
def user_list() -> None:
    """Users and their roles."""
    from leadwatch.cli import _engine
    from leadwatch.db.engine import make_session_factory, unit_of_work
    from leadwatch.users import service

    factory = make_session_factory(_engine(load_settings()))
    table = Table("id", "email", "name", "role", "last sign-in")
    with unit_of_work(factory) as db_session:
        for user in service.list_users(db_session=db_session):
            last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "-"
            table.add_row(str(user.id), user.email, user.name, user.role, last)
    out.print(table)
