"""`reelytics api`: run the serving API and manage its keys."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from warehouse_models.settings import load_settings

console = Console()
app = typer.Typer(help="The serving API (merged batch and speed views over HTTP) and its API keys.",
                  no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create (shown once, stored hashed), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address. Default: REELYTICS_SERVING_HOST "
                                    "(127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port. Default: REELYTICS_SERVING_PORT "
                                    "(8080)."),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes (rate limits are per "
                                "process)."),
) -> None:
    """Run the API in the foreground until Ctrl-C (`reelytics up` runs it in the background).

    Routes are under /v1 (OpenAPI at /openapi.json, browsable at /docs); every request needs an X-API-Key.
    """
    from serving.api.service import API

    settings = load_settings()
    overrides = {k: v for k, v in {"serving_host": host, "serving_port": port}.items() if v is not None}
    settings = settings.model_copy(update=overrides)
    console.print(f"API listening on [cyan]{API.url(settings)}[/] (docs at {API.url(settings, '/docs')}), Redis at "
                  f"{settings.redis_url}")
    API.serve(settings, workers=workers, log_level=settings.log_level)


@keys_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="A unique name for the key's holder, e.g. tv-app."),
    scope: list[str] = typer.Option(..., "--scope", help="read, playback or admin; repeat for several."),
    rate: float | None = typer.Option(None, "--rate", min=0.001, help="Requests per second for this key "
                                      "(default: REELYTICS_SERVING_RATE_PER_SECOND)."),
) -> None:
    """Create a key and print it once (Redis keeps only its SHA-256)."""
    from serving.api.auth import ApiKeyError, create_key

    settings = load_settings()
    try:
        key = create_key(settings.redis_client(), settings.keys, name=name, scopes=scope, rate_per_second=rate)
    except ApiKeyError as exc:
        console.print(f"[red]✗[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"key [bold]{name}[/] ({', '.join(sorted(set(scope)))}); keep it now, it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
def list_() -> None:
    """List the keys (names, scopes, rates; never the keys)."""
    from serving.api.auth import list_keys

    settings = load_settings()
    table = Table(title="API keys")
    for column in ("name", "scopes", "rate/s", "created"):
        table.add_column(column)
    for key in list_keys(settings.redis_client(), settings.keys):
        table.add_row(key.name, ", ".join(sorted(key.scopes)),
                      f"{key.rate_per_second:g}" if key.rate_per_second else f"{settings.serving_rate_per_second:g} "
                      "(default)", key.created_at)
    console.print(table)


@keys_app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The key's name.")) -> None:
    """Revoke a key by name (API processes stop accepting it within 5 seconds)."""
    from serving.api.auth import revoke_key

    settings = load_settings()
    if not revoke_key(settings.redis_client(), settings.keys, name):
        console.print(f"[red]✗[/] no key named {name!r} (`reelytics api keys list`)")
        raise typer.Exit(1)
    console.print(f"key {name} revoked")
