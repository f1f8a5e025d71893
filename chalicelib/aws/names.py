"""Names of the stack's AWS resources, derived from the stack name.

`infra/template.yaml` builds the same names with `Fn::Sub` on
`${AWS::StackName}`, so the runtime finds resources without a lookup table
and the local provisioner and a real deploy agree.
"""

from __future__ import annotations

from chalicelib.config import settings


def queue_name(logical: str) -> str:
    """SQS queue name for a logical queue (`events`, `work`, `notifications`, ...)."""
    return f"{settings().stack_name}-{logical}"


def dlq_name(logical: str) -> str:
    """Dead-letter queue name of a logical queue."""
    return f"{settings().stack_name}-{logical}-dlq"


def pack_bucket() -> str:
    """The S3 bucket holding pack files (one prefix per tenant/pack/version)."""
    return settings().pack_bucket or f"{settings().stack_name}-packs"


def jwt_secret_id() -> str:
    """Secrets Manager id of the JWT signing key."""
    return f"{settings().stack_name}/jwt-signing-key"


def data_key_alias() -> str:
    """KMS alias of the key that wraps datastore data keys."""
    return f"alias/{settings().stack_name}-data"
