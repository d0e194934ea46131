"""The object store: presigned media URLs the stock clients can parse, sizes of objects."""

import time
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest

from shared.storage import Storage


@pytest.fixture
def key(storage: Storage) -> str:
    key = f"videos/{uuid4()}/{uuid4()}.mov"
    storage.put_bytes(key, b"a tiny movie", "video/quicktime")
    return key


def test_presigned_url_uses_query_string_signature_v2(storage, key):
    url = storage.presigned_get(key)

    query = url.split("?", 1)[1]
    assert set(parse_qs(query)) == {"AWSAccessKeyId", "Signature", "Expires"}
    assert "X-Amz-" not in url


def test_presigned_url_query_has_no_dash_or_underscore(storage, key):
    """The stock pipeline takes the file name after the last '-' / '_' of a media URL."""
    url = storage.presigned_get(key)

    assert "?" in url
    query = url.split("?", 1)[1]
    assert "-" not in query and "_" not in query
    assert urlsplit(url).path.endswith(key)


async def test_presigned_url_fetches_the_object(storage, key):
    async with httpx.AsyncClient() as client:
        response = await client.get(storage.presigned_get(key))

    assert response.status_code == 200
    assert response.content == b"a tiny movie"


def test_presigned_url_is_signed_for_the_public_endpoint(s3_settings):
    public = s3_settings.model_copy(update={"s3_public_endpoint_url": "https://s3.example.org"})

    url = Storage(public).presigned_get("videos/x.mov")

    assert url.startswith("https://s3.example.org/")


def test_presigned_url_expires_after_the_ttl(storage, key):
    before = int(time.time())
    url = storage.presigned_get(key, ttl=120)

    expires = int(parse_qs(urlsplit(url).query)["Expires"][0])
    assert before + 120 <= expires <= int(time.time()) + 120


def test_size_of_an_object(storage, key):
    assert storage.size(key) == len(b"a tiny movie")


def test_size_of_a_missing_object_is_none(storage):
    assert storage.size(f"videos/{uuid4()}.mov") is None


def test_uploaded_file_can_be_downloaded(storage, tmp_path):
    key = f"results/{uuid4()}/facts.json"
    source = tmp_path / "in.json"
    source.write_bytes(b'{"frames": 30}')
    with source.open("rb") as handle:
        storage.upload_fileobj(handle, key, "application/json")

    storage.download_file(key, str(tmp_path / "out.json"))

    assert (tmp_path / "out.json").read_bytes() == b'{"frames": 30}'


def test_a_bucket_it_creates_drops_unfinished_uploads_and_lets_the_web_app_read(s3_settings):
    """Known-failures 19: the web app fetches results from the bucket, from its origin."""
    fresh = Storage(s3_settings.model_copy(update={"s3_bucket": f"fresh-{uuid4().hex[:12]}"}))

    fresh.ensure_bucket(["https://app.example"])
    fresh.ensure_bucket(["https://other.example"])  # an existing bucket is left as it is

    rules = fresh.client.get_bucket_lifecycle_configuration(Bucket=fresh.bucket)["Rules"]
    assert [r["AbortIncompleteMultipartUpload"] for r in rules] == [{"DaysAfterInitiation": 1}]
    [cors] = fresh.client.get_bucket_cors(Bucket=fresh.bucket)["CORSRules"]
    assert cors["AllowedOrigins"] == ["https://app.example"]
    assert (cors["AllowedMethods"], cors["ExposeHeaders"]) == (["GET", "HEAD"], ["ETag"])
