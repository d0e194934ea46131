"""The object store (S3 or any S3-compatible endpoint) through boto3.

Presigned GET URLs are made with S3's query-string signature version 2
(`?AWSAccessKeyId=…&Signature=…&Expires=…`): the stock pipeline parses file names out of
media URLs and breaks on SigV4 query strings (reference: opencap-api §0.5). They are signed
for the public endpoint, the one clients can reach.
"""

from collections.abc import Sequence
from typing import IO, Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.config import S3Settings


def _client(settings: S3Settings, endpoint: str | None, signature_version: str) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key,
        config=Config(
            signature_version=signature_version,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


ABORT_UNFINISHED = {
    "ID": "abort-unfinished-multipart-uploads",
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}


def cors_rules(origins: Sequence[str]) -> dict:
    """The bucket's CORS configuration: the web app's origins may read objects (presigned
    result and video URLs) from the browser, and see their ETag."""
    rule = {
        "AllowedMethods": ["GET", "HEAD"],
        "AllowedOrigins": list(origins),
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }
    return {"CORSRules": [rule]}


class Storage:
    """Blocking boto3 calls: run them in a thread from async code."""

    def __init__(self, settings: S3Settings):
        self.bucket = settings.s3_bucket
        self.ttl = settings.media_url_ttl_seconds
        self.client = _client(settings, settings.s3_endpoint_url, "s3v4")
        public = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self.presigner = _client(settings, public, "s3")

    def ensure_bucket(self, cors_origins: Sequence[str] = ()) -> None:
        """Create the bucket if it is missing (local runs and tests), with the lifecycle rule
        that drops multipart uploads left unfinished for a day (an upload process killed
        mid-upload cannot abort its own) and, given the web app's origins, the CORS rule
        that lets it read objects. An existing bucket is left as it is."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [ABORT_UNFINISHED]}
            )
            if cors_origins:
                self.client.put_bucket_cors(
                    Bucket=self.bucket, CORSConfiguration=cors_rules(cors_origins)
                )

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def upload_fileobj(self, fileobj: IO[bytes], key: str, content_type: str | None = None) -> None:
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        self.client.upload_fileobj(fileobj, self.bucket, key, ExtraArgs=extra)

    def download_file(self, key: str, path: str) -> None:
        self.client.download_file(self.bucket, key, path)

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if there is no such object."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def presigned_get(self, key: str, ttl: int | None = None) -> str:
        return self.presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl or self.ttl
        )
