"""App-token endpoints: POST v3/app-tokens, GET/DELETE v3/app-tokens/{token}."""

from __future__ import annotations

from typing import Any

from ._core import Call, Reply, ServerState, error, is_number, parse_json_object


def _expires_at(state: ServerState, expires_at: float) -> int | str:
    fmt = state.config.token_expires_format
    if fmt == "seconds":
        return int(expires_at)
    ms = int(expires_at * 1000)
    return str(ms) if fmt == "ms_string" else ms


async def handle_app_token_new(state: ServerState, call: Call) -> Reply:
    cfg = state.config
    options = parse_json_object(call.body, state)
    if isinstance(options, Reply):
        return options
    strokes = bool(options.get("include_strokes_session_id", False))
    expires = options.get("expires", 300)
    if not is_number(expires):
        return error(
            "opts_number_required",
            "expires must be a number of seconds",
            name="expires",
            value=expires,
        )
    top = min(cfg.token_max_expires, 300) if strokes else cfg.token_max_expires
    if not cfg.token_min_expires <= expires <= top:
        return error(
            "opts_value_out_of_range",
            f"expires must be between {cfg.token_min_expires:g} and {top:g} seconds",
            name="expires",
            value=expires,
        )
    user_id = options.get("user_id")
    info = state.tokens.create(
        lifetime=float(expires),
        app_id=state.app_id,
        group_id=state.group_id,
        user_id=str(user_id) if user_id is not None else None,
        strokes=strokes,
    )
    body: dict[str, Any] = {
        "app_token": info.app_token,
        "app_token_expires_at": _expires_at(state, info.expires_at),
    }
    if info.strokes_session_id:
        body["strokes_session_id"] = info.strokes_session_id
    return Reply(body)


async def handle_app_token_get(state: ServerState, call: Call) -> Reply:
    info = state.tokens.get(call.request.path_params["token"])
    if info is None:
        return error("token_unknown", "Unknown app token")
    return Reply(
        {
            "app_token": info.app_token,
            "app_token_expires_at": _expires_at(state, info.expires_at),
            "app_id": info.app_id,
            "group_id": info.group_id,
            "user_id": info.user_id,
        }
    )


async def handle_app_token_delete(state: ServerState, call: Call) -> Reply:
    info = state.tokens.delete(call.request.path_params["token"])
    if info is None:
        return error("token_unknown", "Unknown app token")
    return Reply(
        {
            "app_token": info.app_token,
            "app_id": info.app_id,
            "group_id": info.group_id,
            "user_id": info.user_id,
        }
    )
