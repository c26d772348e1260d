"""DELETE /v1/keys/{key_id}: a clinic revokes one of its own keys (secret key only)."""

from __future__ import annotations

from fastapi import APIRouter

from assistant.api.deps import AssistantDep, SecretKey, SettingsDep, bounded
from assistant.api.errors import responses
from assistant.api.models import KeyRevoked

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.delete(
    "/{key_id}",
    response_model=KeyRevoked,
    responses=responses(401, 403, 404, 429, 503, 504, _404="The clinic has no active key with that id."),
    summary="Revoke one of the clinic's keys",
)
async def revoke_key(key_id: str, who: SecretKey, assistant: AssistantDep, settings: SettingsDep) -> KeyRevoked:
    """Revoke a key of this clinic by its id (for example a publishable key that leaked): every worker
    on every machine refuses it from its next request. A key may revoke itself."""
    revoked = await bounded(
        settings, lambda: assistant.library.registry.revoke_key(key_id, clinic=who.clinic.id)
    )
    return KeyRevoked(id=revoked)
