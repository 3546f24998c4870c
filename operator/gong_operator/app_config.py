"""Would the app start with this environment? The app's own start-up checks, run by the operator.

``gong-webhook-app`` (``webhook_app.cli.main``) reads its settings with ``load_settings`` and, when the
loader runs in the same process (the default), also ``require_loader_settings``; a ``ConfigError``
makes it exit 2 before serving. The operator runs the same two functions over the exact environment
it renders (ConfigMap + synced Secret) before it rolls the pods, so a configuration the app refuses
becomes a condition on the GongWebhook instead of a crash loop. The messages name the setting, never
its value (``ConfigError`` guarantees that), so they can go into status and Events.

The check is as good as the agreement between the operator's bundled ``webhook_app`` and the image in
``spec.image``: both ship from this repository at the same version.
"""

from __future__ import annotations

from collections.abc import Mapping

from webhook_app.settings import AppSettings, ConfigError, load_settings, require_loader_settings


def load(env: Mapping[str, str]) -> AppSettings:
    """The settings the app would run with; raises ``ConfigError`` where the app would exit 2."""
    settings = load_settings(env)
    if settings.run_loader_in_process:
        require_loader_settings(settings)
    return settings


def refusal(env: Mapping[str, str]) -> str | None:
    """The one-line error the app would exit with, or ``None`` when it would start."""
    try:
        load(env)
    except ConfigError as e:
        return str(e)
    return None
