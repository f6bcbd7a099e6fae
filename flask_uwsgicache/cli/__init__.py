"""``flask uwsgicache ...``: parses the command line and delegates (registered by init_app).

* ``flask uwsgicache config``: the resolved config and backend (:mod:`.config`).
* ``flask uwsgicache doctor [--ini FILE]``: what uWSGI makes of the ini's cache2 lines
  (:mod:`.doctor`); exits 1 on an error, 0 with only warnings.
* ``flask uwsgicache stats --stats ADDR [--url URL]``: a running uWSGI's caches from its
  stats server, and the app's per-view counts from ``URL`` (:mod:`.stats`).
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from . import config, doctor, stats


@click.group("uwsgicache", help="Inspect flask-uwsgicache and the uWSGI cache it uses.")
def group() -> None:
    pass


@group.command("config")
@with_appcontext
def config_command() -> None:
    """Show the app's UWSGICACHE_* settings and the cache built from them."""
    click.echo(config.config_report(current_app), nl=False)


@group.command("doctor")
@click.option(
    "--ini",
    type=click.Path(exists=True, dir_okay=False),
    help="the uWSGI ini file the app is served with",
)
@with_appcontext
def doctor_command(ini: str | None) -> None:
    """Explain the ini's cache2 lines as uWSGI reads them, and check the app fits them.

    Exits 1 when there is an error (uWSGI or the app would fail), 0 otherwise.
    """
    try:
        report = doctor.check(current_app.config, ini)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.render(), nl=False)
    raise SystemExit(report.exit_code)


@group.command("stats")
@click.option(
    "--stats",
    "address",
    required=True,
    help="uWSGI's stats server: host:port, a unix socket path, or http:// for stats-http",
)
@click.option("--url", help="a URL where the app serves cache.stats() as JSON")
def stats_command(address: str, url: str | None) -> None:
    """Show a running uWSGI's caches (items, hits, misses, full) and the app's views."""
    try:
        found = stats.read_stats(address)
        app_stats = stats.read_app_stats(url) if url else None
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot read the stats: {error}") from None
    click.echo(stats.render(found, app_stats), nl=False)
