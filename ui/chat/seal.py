"""Saved conversations sealed per user: on a shared browser, one login never opens another's.

Gradio's BrowserState encrypts the store with one secret for the whole app, and that secret is sent to every
page in its config, so on a shared browser bob's page could read alice's saved chats. The store the browser keeps
is therefore an envelope sealed on the server with AES-GCM under a key derived for the logged-in user
(HMAC-SHA256 of a server secret that never leaves the server, and the user name). Another user's page, or a page
after the server secret changed, opens it as an empty store, and the next save replaces it.

    WORKBENCH_BROWSER_SECRET   keeps saved chats readable across restarts (both secrets derive from it); unset:
                               a random one per server start (saved chats then read as empty after a restart)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any, Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_ENV = "WORKBENCH_BROWSER_SECRET"
_PROCESS_SECRET = os.urandom(32)  # used when the environment sets none


def _base_secret() -> bytes:
    configured = os.environ.get(SECRET_ENV)
    return configured.encode("utf-8") if configured else _PROCESS_SECRET


def _derive(purpose: str) -> bytes:
    return hmac.new(_base_secret(), purpose.encode("utf-8"), hashlib.sha256).digest()


def browser_state_secret() -> str:
    """BrowserState's own secret: public (it is in the page's config), derived so it reveals nothing of the key
    that seals each user's store."""
    return _derive("browser-state").hex()


def _user_key(user: Optional[str]) -> bytes:
    return _derive("saved-chats:" + (user or ""))


def seal(store: dict[str, Any], user: Optional[str]) -> dict[str, str]:
    """The store as the browser keeps it: {"sealed": base64(nonce + AES-GCM ciphertext)}, bound to `user`."""
    nonce = os.urandom(12)
    plain = json.dumps(store, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    box = AESGCM(_user_key(user)).encrypt(nonce, plain, b"llm-workbench-chats")
    return {"sealed": base64.b64encode(nonce + box).decode("ascii")}


def unseal(value: Any, user: Optional[str]) -> Any:
    """What `seal` made for this user, or None: another user's envelope, a changed secret, or anything malformed
    (an unsealed store from an older version included) opens as nothing."""
    if not isinstance(value, dict) or not isinstance(value.get("sealed"), str):
        return None
    try:
        raw = base64.b64decode(value["sealed"], validate=True)
        plain = AESGCM(_user_key(user)).decrypt(raw[:12], raw[12:], b"llm-workbench-chats")
        return json.loads(plain.decode("utf-8"))
    except (ValueError, InvalidTag, UnicodeDecodeError):
        return None
