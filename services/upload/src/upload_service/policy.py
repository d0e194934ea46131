"""Upload policies in the shape of S3's signature-v2 POST policy, signed by this service.

The stock phones decode exactly `{url, fields: {key, AWSAccessKeyId, policy, signature}}`
and post those four fields plus `file`. `policy` is base64 JSON naming the key, the size
range and the expiry; `signature` is base64 HMAC-SHA1 of `policy` under our secret. Our
own upload endpoint checks them before storing anything.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import Forbidden, Invalid


@dataclass(frozen=True)
class Policy:
    key: str
    expires_at: datetime
    min_bytes: int
    max_bytes: int


def _sign(secret: str, policy_b64: str) -> str:
    digest = hmac.new(secret.encode(), policy_b64.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def issue(key: str, now: datetime, ttl: timedelta, max_bytes: int, secret: str) -> tuple[str, str]:
    """(policy, signature) allowing one object `key` of 1..max_bytes until now + ttl."""
    document = {
        "expiration": (now + ttl).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [{"key": key}, ["content-length-range", 1, max_bytes]],
    }
    policy_b64 = base64.b64encode(json.dumps(document).encode()).decode()
    return policy_b64, _sign(secret, policy_b64)


def verify(policy_b64: str, signature: str, key: str, now: datetime, secret: str) -> Policy:
    """The policy if the signature is ours, it is unexpired and it names `key`."""
    if not hmac.compare_digest(_sign(secret, policy_b64).encode(), signature.encode()):
        raise Forbidden("The upload signature does not match its policy.")
    try:
        document = json.loads(base64.b64decode(policy_b64, validate=True))
        expires_at = datetime.strptime(document["expiration"], "%Y-%m-%dT%H:%M:%S.000Z")
        conditions = document["conditions"]
        policy_key = next(c["key"] for c in conditions if isinstance(c, dict) and "key" in c)
        _, low, high = next(c for c in conditions if isinstance(c, list))
    except (ValueError, KeyError, StopIteration, TypeError):
        raise Invalid("The upload policy is malformed.", field="policy") from None
    if expires_at.replace(tzinfo=now.tzinfo) <= now:
        raise Forbidden("The upload policy has expired: ask for a new one.")
    if policy_key != key:
        raise Forbidden("The upload key is not the one the policy allows.")
    return Policy(policy_key, expires_at, int(low), int(high))
