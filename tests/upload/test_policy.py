"""Upload policies: what our upload endpoint accepts (SigV2 POST-policy shape), no database."""

import base64
import json
from datetime import timedelta

import pytest

from shared.db import utcnow
from shared.errors import Forbidden, Invalid
from upload_service import policy

SECRET = "secret"
KEY = "0b7e1c44-2f67-4f0e-9a4b-6f8a0c1d2e3f.mov"
HOUR = timedelta(hours=1)


def issued(now=None, ttl=HOUR, key=KEY, max_bytes=1000):
    return policy.issue(key, now or utcnow(), ttl, max_bytes, SECRET)


def test_issued_policy_verifies_with_its_key_and_limits():
    now = utcnow()
    policy_b64, signature = issued(now, max_bytes=5000)

    allowed = policy.verify(policy_b64, signature, KEY, now, SECRET)

    assert (allowed.key, allowed.min_bytes, allowed.max_bytes) == (KEY, 1, 5000)
    assert allowed.expires_at > now.replace(tzinfo=None)


def test_policy_document_has_the_s3_post_policy_shape():
    policy_b64, signature = issued()

    document = json.loads(base64.b64decode(policy_b64))

    assert set(document) == {"expiration", "conditions"}
    assert {"key": KEY} in document["conditions"]
    assert ["content-length-range", 1, 1000] in document["conditions"]
    assert len(base64.b64decode(signature)) == 20  # HMAC-SHA1


def test_tampered_policy_is_forbidden():
    policy_b64, signature = issued()
    document = json.loads(base64.b64decode(policy_b64))
    document["conditions"][1][2] = 10**12
    tampered = base64.b64encode(json.dumps(document).encode()).decode()

    with pytest.raises(Forbidden):
        policy.verify(tampered, signature, KEY, utcnow(), SECRET)


def test_tampered_signature_is_forbidden():
    policy_b64, signature = issued()
    forged = base64.b64encode(b"x" * 20).decode()

    with pytest.raises(Forbidden):
        policy.verify(policy_b64, forged, KEY, utcnow(), SECRET)


def test_signature_with_non_ascii_characters_is_forbidden():
    policy_b64, _ = issued()

    with pytest.raises(Forbidden):
        policy.verify(policy_b64, "sïgnature", KEY, utcnow(), SECRET)


def test_policy_signed_with_another_secret_is_forbidden():
    policy_b64, signature = policy.issue(KEY, utcnow(), HOUR, 1000, "another secret")

    with pytest.raises(Forbidden):
        policy.verify(policy_b64, signature, KEY, utcnow(), SECRET)


def test_expired_policy_is_forbidden():
    now = utcnow()
    policy_b64, signature = issued(now - 2 * HOUR)

    with pytest.raises(Forbidden, match="expired"):
        policy.verify(policy_b64, signature, KEY, now, SECRET)


def test_policy_is_valid_until_its_expiration():
    now = utcnow()
    policy_b64, signature = issued(now, ttl=HOUR)

    policy.verify(policy_b64, signature, KEY, now + HOUR - timedelta(seconds=1), SECRET)
    with pytest.raises(Forbidden):
        policy.verify(policy_b64, signature, KEY, now + HOUR + timedelta(seconds=1), SECRET)


def test_key_other_than_the_policys_is_forbidden():
    policy_b64, signature = issued()

    with pytest.raises(Forbidden, match="key"):
        policy.verify(policy_b64, signature, "another.mov", utcnow(), SECRET)


@pytest.mark.parametrize(
    "garbage",
    [
        "not base64 at all!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b'["a list"]').decode(),
        base64.b64encode(b'{"expiration": "tomorrow", "conditions": []}').decode(),
        base64.b64encode(b'{"expiration": "2099-01-01T00:00:00.000Z", "conditions": []}').decode(),
    ],
)
def test_malformed_policy_with_a_valid_signature_is_invalid(garbage):
    signature = policy._sign(SECRET, garbage)

    with pytest.raises(Invalid):
        policy.verify(garbage, signature, KEY, utcnow(), SECRET)
