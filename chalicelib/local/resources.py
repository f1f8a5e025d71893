"""One create-or-update function per CloudFormation resource type the local cloud supports.

Each takes the resource's properties with intrinsics already resolved and
returns what `Ref` and `Fn::GetAtt` give for it. Each finds an existing
resource by name (or, for KMS keys, by tag) first, so provisioning is
idempotent. Properties that only matter in a real account are named in
`PRODUCTION_ONLY` and ignored; any other unknown property is logged, never
silently dropped.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.clients import client
from chalicelib.core.errors import AttuneError
from chalicelib.local.moto_state import remembered_secret

log = logging.getLogger(__name__)

STACK_TAG = "attune:stack"
LOGICAL_TAG = "attune:logical-id"
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue",
    "FifoThroughputLimit", "KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId",
    "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy", "RedrivePolicy", "VisibilityTimeout",
)
PRODUCTION_ONLY = {"Tags", "SqsManagedSseEnabled", "EnableKeyRotation", "PendingWindowInDays",
                   "LoggingConfiguration", "TracingConfiguration", "ReplicaRegions",
                   "NotificationConfiguration", "OwnershipControls", "MultiRegion"}


class ProvisionError(AttuneError):
    """The template asks for something the local provisioner cannot create or resolve."""

    code = "provision_error"


@dataclass
class Created:
    """What a resource resolves to: its `Ref` value and its `Fn::GetAtt` attributes."""

    ref: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Stack-wide facts the handlers need (names, account, where relative files live)."""

    stack: str
    region: str
    account_id: Callable[[], str]
    template_dir: Path
    # The local cloud's data dir: secrets created there keep their value across emulator restarts.
    state_dir: Path | None = None


Handler = Callable[[Context, str, Mapping[str, Any]], Created]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _warn_unknown(logical: str, props: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(props) - known - PRODUCTION_ONLY)
    if extra:
        log.warning("%s: properties %s are not applied locally", logical, ", ".join(extra))


def _attr_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def sqs_queue(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """A queue, updated in place when it exists so its messages survive a restart."""
    _warn_unknown(logical, props, {"QueueName", *_QUEUE_ATTRIBUTES})
    sqs = client("sqs")
    name = str(props.get("QueueName") or f"{ctx.stack}-{logical}")
    attrs = {k: _attr_text(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if _error_code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        log.info("created queue %s", name)
    else:
        mutable = {k: v for k, v in attrs.items() if k != "FifoQueue"}
        if mutable:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Created(ref=url, attrs={"Arn": arn, "QueueName": name, "QueueUrl": url})


def s3_bucket(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """A bucket with the versioning, encryption and public-access settings the template asks for."""
    _warn_unknown(logical, props, {"BucketName", "VersioningConfiguration",
                                   "PublicAccessBlockConfiguration", "BucketEncryption"})
    s3 = client("s3")
    name = str(props.get("BucketName") or f"{ctx.stack}-{logical}".lower())
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        extra = {} if ctx.region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": ctx.region}
        }
        s3.create_bucket(Bucket=name, **extra)
        log.info("created bucket %s", name)
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=dict(props["PublicAccessBlockConfiguration"])
        )
    if "BucketEncryption" in props:
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    return Created(ref=name, attrs={
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{ctx.region}.amazonaws.com",
    })


def _find_key(ctx: Context, logical: str) -> str | None:
    kms = client("kms")
    wanted = {STACK_TAG: ctx.stack, LOGICAL_TAG: logical}
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            if meta.get("KeyManager") != "CUSTOMER" or meta.get("KeyState") == "PendingDeletion":
                continue
            tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
            if {t["TagKey"]: t["TagValue"] for t in tags}.items() >= wanted.items():
                return str(key["KeyId"])
    return None


def kms_key(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """A customer key, found again by its stack and logical-id tags (keys have no names)."""
    _warn_unknown(logical, props, {"Description", "KeyUsage", "KeySpec", "KeyPolicy", "Enabled"})
    kms = client("kms")
    key_id = _find_key(ctx, logical)
    if key_id is None:
        kwargs: dict[str, Any] = {
            "Tags": [{"TagKey": STACK_TAG, "TagValue": ctx.stack},
                     {"TagKey": LOGICAL_TAG, "TagValue": logical}],
        }
        for prop, arg in (("Description", "Description"), ("KeyUsage", "KeyUsage"),
                          ("KeySpec", "KeySpec")):
            if prop in props:
                kwargs[arg] = props[prop]
        if "KeyPolicy" in props:
            kwargs["Policy"] = _attr_text(props["KeyPolicy"])
        key_id = str(kms.create_key(**kwargs)["KeyMetadata"]["KeyId"])
        log.info("created KMS key %s for %s", key_id, logical)
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    return Created(ref=key_id, attrs={"Arn": arn, "KeyId": key_id})


def kms_alias(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """An alias, re-pointed when it exists but names another key."""
    _warn_unknown(logical, props, {"AliasName", "TargetKeyId"})
    kms = client("kms")
    name, target = str(props["AliasName"]), str(props["TargetKeyId"])
    current = None
    for page in kms.get_paginator("list_aliases").paginate():
        for alias in page["Aliases"]:
            if alias["AliasName"] == name:
                current = alias.get("TargetKeyId")
    if current is None:
        kms.create_alias(AliasName=name, TargetKeyId=target)
        log.info("created KMS alias %s", name)
    elif current != target:
        kms.update_alias(AliasName=name, TargetKeyId=target)
    return Created(ref=name)


def generate_secret_string(spec: Mapping[str, Any]) -> str:
    """A value shaped by CloudFormation's GenerateSecretString, from the `secrets` CSPRNG."""
    exclude = set(str(spec.get("ExcludeCharacters", "")))
    pools = [
        pool for flag, pool in (
            ("ExcludeLowercase", string.ascii_lowercase),
            ("ExcludeUppercase", string.ascii_uppercase),
            ("ExcludeNumbers", string.digits),
            ("ExcludePunctuation", PUNCTUATION),
        ) if not spec.get(flag, False)
    ]
    if spec.get("IncludeSpace", False):
        pools.append(" ")
    pools = ["".join(c for c in pool if c not in exclude) for pool in pools]
    pools = [pool for pool in pools if pool]
    length = int(spec.get("PasswordLength", 32))
    if not pools or length < 1:
        raise ProvisionError("GenerateSecretString excludes every character")
    alphabet = "".join(pools)
    require_each = spec.get("RequireEachIncludedType", True) and length >= len(pools)
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if not require_each or all(any(c in pool for c in value) for pool in pools):
            break
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template and key:
        doc = json.loads(template)
        doc[key] = value
        return json.dumps(doc)
    return value


def secret(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """A secret; an existing one keeps its value, so tokens signed earlier stay valid."""
    _warn_unknown(logical, props, {"Name", "Description", "SecretString",
                                   "GenerateSecretString", "KmsKeyId"})
    sm = client("secretsmanager")
    name = str(props.get("Name") or f"{ctx.stack}-{logical}")
    try:
        found = sm.describe_secret(SecretId=name)
        if found.get("DeletedDate"):
            sm.restore_secret(SecretId=name)
        arn = str(found["ARN"])
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        value = props.get("SecretString")
        if value is None:
            spec = props.get("GenerateSecretString", {})
            value = (remembered_secret(ctx.state_dir, name, lambda: generate_secret_string(spec))
                     if ctx.state_dir is not None else generate_secret_string(spec))
        kwargs = {k: props[k] for k in ("Description", "KmsKeyId") if k in props}
        arn = str(sm.create_secret(Name=name, SecretString=str(value), **kwargs)["ARN"])
        log.info("created secret %s", name)
    return Created(ref=arn, attrs={"Id": arn})


def schedule_group(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """A schedule group, created once."""
    _warn_unknown(logical, props, {"Name"})
    scheduler = client("scheduler")
    name = str(props.get("Name") or f"{ctx.stack}-{logical}")
    try:
        arn = scheduler.get_schedule_group(Name=name)["Arn"]
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        arn = scheduler.create_schedule_group(Name=name)["ScheduleGroupArn"]
        log.info("created schedule group %s", name)
    return Created(ref=name, attrs={"Arn": str(arn)})


_SCHEDULE_FIELDS = ("Description", "ScheduleExpression", "ScheduleExpressionTimezone",
                    "FlexibleTimeWindow", "Target", "State", "StartDate", "EndDate",
                    "KmsKeyArn", "ActionAfterCompletion")


def schedule(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """A schedule, replaced in place when it exists (the local scheduler re-reads it)."""
    _warn_unknown(logical, props, {"Name", "GroupName", *_SCHEDULE_FIELDS})
    scheduler = client("scheduler")
    name = str(props.get("Name") or f"{ctx.stack}-{logical}")
    group = str(props.get("GroupName") or "default")
    kwargs = {k: props[k] for k in _SCHEDULE_FIELDS if k in props}
    try:
        scheduler.get_schedule(Name=name, GroupName=group)
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        arn = scheduler.create_schedule(Name=name, GroupName=group, **kwargs)["ScheduleArn"]
        log.info("created schedule %s/%s", group, name)
    else:
        arn = scheduler.update_schedule(Name=name, GroupName=group, **kwargs)["ScheduleArn"]
    return Created(ref=name, attrs={"Arn": str(arn)})


def _definition(ctx: Context, props: Mapping[str, Any]) -> str:
    if "Definition" in props:
        text = json.dumps(props["Definition"])
    elif "DefinitionString" in props:
        text = str(props["DefinitionString"])
    elif isinstance(props.get("DefinitionS3Location"), str):
        # `aws cloudformation package` uploads a local path; locally we read it.
        text = (ctx.template_dir / props["DefinitionS3Location"]).read_text(encoding="utf-8")
    else:
        raise ProvisionError("a state machine needs Definition, DefinitionString or a local "
                             "DefinitionS3Location path")
    for key, value in props.get("DefinitionSubstitutions", {}).items():
        text = text.replace("${" + key + "}", str(value))
    return text


def state_machine(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """A state machine, whose definition is replaced when it exists so ASL edits take effect."""
    _warn_unknown(logical, props, {"StateMachineName", "StateMachineType", "RoleArn",
                                   "Definition", "DefinitionString", "DefinitionS3Location",
                                   "DefinitionSubstitutions"})
    sfn = client("stepfunctions")
    name = str(props.get("StateMachineName") or f"{ctx.stack}-{logical}")
    definition = _definition(ctx, props)
    role = str(props.get("RoleArn") or f"arn:aws:iam::{ctx.account_id()}:role/{ctx.stack}-states")
    arn = None
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == name:
                arn = str(machine["stateMachineArn"])
    if arn is None:
        arn = str(sfn.create_state_machine(
            name=name, definition=definition, roleArn=role,
            type=str(props.get("StateMachineType", "STANDARD")),
        )["stateMachineArn"])
        log.info("created state machine %s", name)
    else:
        sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
    return Created(ref=arn, attrs={"Arn": arn, "Name": name})


def iam_role(ctx: Context, logical: str, props: Mapping[str, Any]) -> Created:
    """A role with its inline policies, so targets that name a RoleArn find a real one."""
    _warn_unknown(logical, props, {"RoleName", "Path", "AssumeRolePolicyDocument", "Policies",
                                   "ManagedPolicyArns", "Description"})
    iam = client("iam")
    name = str(props.get("RoleName") or f"{ctx.stack}-{logical}")
    trust = _attr_text(props["AssumeRolePolicyDocument"])
    try:
        role = iam.get_role(RoleName=name)["Role"]
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
    except ClientError as exc:
        if _error_code(exc) != "NoSuchEntity":
            raise
        kwargs = {k: props[k] for k in ("Path", "Description") if k in props}
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, **kwargs)["Role"]
        log.info("created role %s", name)
    for policy in props.get("Policies", []):
        iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                            PolicyDocument=_attr_text(policy["PolicyDocument"]))
    for managed in props.get("ManagedPolicyArns", []):
        iam.attach_role_policy(RoleName=name, PolicyArn=managed)
    return Created(ref=name, attrs={"Arn": str(role["Arn"]), "RoleId": str(role["RoleId"])})


HANDLERS: dict[str, Handler] = {
    "AWS::SQS::Queue": sqs_queue,
    "AWS::S3::Bucket": s3_bucket,
    "AWS::KMS::Key": kms_key,
    "AWS::KMS::Alias": kms_alias,
    "AWS::SecretsManager::Secret": secret,
    "AWS::Scheduler::ScheduleGroup": schedule_group,
    "AWS::Scheduler::Schedule": schedule,
    "AWS::StepFunctions::StateMachine": state_machine,
    "AWS::IAM::Role": iam_role,
}
