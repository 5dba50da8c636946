"""CLI: ``thrifty revisions NAME``, ``thrifty rollback NAME [--to N]``, ``thrifty delete NAME``.

On this machine's target the verbs run here (the gateway swaps revisions with no request lost).
A cloud deployment's target is a Prefect block the library cannot load, so there the CLI runs the
``rollback-deployment`` / ``delete-deployment`` flow on the Prefect server (``make server``).
A verb a target does not support is printed as such (``status: unsupported``), not raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from thrifty.lifecycle.core import Outcome

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
NameArg = Annotated[str, typer.Argument(help="Deployment name (`thrifty status` lists them).")]


def revisions(name: NameArg, as_json: JsonOpt = False) -> None:
    """List a deployment's revisions (newest last) and which lifecycle verbs its target supports."""
    from thrifty import runtime
    from thrifty.cli import console, print_json
    from thrifty.lifecycle.core import revision_rows, verbs_of
    from thrifty.render import Col, print_table

    registry = runtime.registry()
    rows = revision_rows(registry, name)
    row = registry.find_deployment(name)
    if row is None and not rows:
        registry.get_deployment(name)  # NotFoundError: names the deployment and `thrifty status`
    verbs = verbs_of(row) if row is not None else {}
    if as_json:
        print_json({"deployment": name, "revisions": rows, "verbs": verbs})
        return
    columns = [Col("rev", key=True, justify="right"), Col("state", key=True), Col("target"),
               Col("where"), Col("variant", justify="right"), Col("created (UTC)"), Col("reason")]  # fmt: skip
    cells = [_cells(r) for r in rows]
    print_table(console, columns, cells, title=f"revisions of {name}")
    for verb, reason in verbs.items():
        if reason:
            console.print(f"{verb}: not supported on this target ({reason})", highlight=False)


def _cells(r: dict[str, Any]) -> list[str]:
    where = f"{r['region']} {r['instance_type']}"
    created = r["created_at"][:19]
    return [
        str(r["revision"]),
        r["state"],
        r["target"],
        where,
        str(r["variant_id"] or ""),
        created,
        r["reason"],
    ]


def rollback(
    name: NameArg,
    to: Annotated[
        int | None, typer.Option("--to", help="Revision number; default: the previous one.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an earlier verified revision live again: started beside, verified, then traffic moves."""
    _run(name, "rollback", {"name": name, "to": to}, as_json, lambda lc: lc.rollback(name, to))


def delete(name: NameArg, as_json: JsonOpt = False) -> None:
    """Delete a deployment on its target (every revision); its history stays in the registry."""
    _run(name, "delete", {"name": name}, as_json, lambda lc: lc.delete(name))


def _run(name: str, verb: str, params: dict[str, Any], as_json: bool, here: Any) -> None:
    from thrifty import runtime
    from thrifty.errors import ProviderError, ThriftyError
    from thrifty.lifecycle.core import outcome_of_error
    from thrifty.targets import TargetKind, target

    row = runtime.registry().get_deployment(name)
    try:
        if target(row.provider).kind is TargetKind.LOCAL:
            outcome = _outcome_row(here(local_lifecycle()))
        else:
            outcome = _remote(verb, params)
    except ThriftyError as exc:
        outcome = _outcome_row(outcome_of_error(name, verb, exc))
    _print(outcome, as_json)
    if outcome["status"] == "failed":
        raise ProviderError(f"{verb} of {name!r} failed: {outcome['detail']}", hint="see `thrifty revisions`")


def local_lifecycle() -> Any:
    from thrifty import runtime
    from thrifty.lifecycle import Lifecycle, smoke_verifier
    from thrifty.providers.local import LocalProvider

    return Lifecycle(runtime.registry(), lambda _ref: LocalProvider(), smoke_verifier())


def _remote(verb: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run the verb's flow on the Prefect server: it builds the provider from the target block."""
    from thrifty.client import run_deployment
    from thrifty.errors import ProviderError

    flow = f"{verb}-deployment"
    done = run_deployment(f"{flow}/{flow}", params)
    if not done.ok:
        raise ProviderError(
            f"the {flow} run ended {done.state_message}", hint="see the run in the Prefect UI"
        )
    return {
        "name": params["name"],
        "verb": verb,
        "status": "done",
        "detail": f"flow run {done.state_message}",
    }


def _outcome_row(outcome: Outcome) -> dict[str, Any]:
    return outcome.row()


def _print(outcome: dict[str, Any], as_json: bool) -> None:
    from thrifty.cli import console, print_json

    if as_json:
        print_json(outcome)
        return
    seconds = f" in {outcome['seconds']:.1f} s" if outcome.get("seconds") else ""
    revision = f" → r{outcome['revision']}" if outcome.get("revision") else ""
    console.print(
        f"{outcome['verb']} {outcome['name']}{revision}: {outcome['status']}{seconds}", highlight=False
    )
    if outcome.get("detail"):
        console.print(f"  {outcome['detail']}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("revisions")(revisions)
    app.command("rollback")(rollback)
    app.command("delete")(delete)
