"""The stored result: the documented shape, storable in jsonb, and without the action's secrets."""

from __future__ import annotations

from chalicelib.worker.results import MASK, result_doc, secret_values


def test_result_has_the_documented_shape() -> None:
    assert result_doc(exit_code=1, stderr="boom", error="exit code 1") == {
        "exit_code": 1, "stdout": "", "stderr": "boom", "output": None, "error": "exit code 1"
    }


def test_nul_characters_are_replaced_so_postgresql_accepts_the_result() -> None:
    doc = result_doc(stdout="a\x00b", output={"k\x00": ["\x00"]})
    assert doc["stdout"] == "a\ufffdb" and doc["output"] == {"k\ufffd": ["\ufffd"]}


def test_secret_parameter_values_are_masked_wherever_the_action_echoed_them() -> None:
    # GIVEN an action declaring one secret parameter (and one that is too short to mask usefully)
    declared = {"token": {"type": "string", "secret": True}, "pin": {"type": "string", "secret": True},
                "user": {"type": "string"}}
    secrets = secret_values(declared, {"token": "s3cr3t-token", "pin": "42", "user": "ada"})
    assert secrets == ("s3cr3t-token",)
    # WHEN its result mentions the secret in every field
    doc = result_doc(stdout="token=s3cr3t-token", stderr="s3cr3t-token!", output={"t": ["s3cr3t-token"]},
                     error="bad s3cr3t-token", secrets=secrets)
    # THEN the stored result holds the mask instead; other values are untouched
    assert doc["stdout"] == f"token={MASK}" and doc["stderr"] == f"{MASK}!"
    assert doc["output"] == {"t": [MASK]} and doc["error"] == f"bad {MASK}"
    assert result_doc(stdout="ada 42", secrets=secrets)["stdout"] == "ada 42"


def test_longer_secrets_are_masked_before_the_shorter_ones_they_contain() -> None:
    declared = {"a": {"secret": True}, "b": {"secret": True}}
    secrets = secret_values(declared, {"a": "abcd", "b": "abcdefgh"})
    assert secrets == ("abcdefgh", "abcd")
    assert result_doc(stdout="abcdefgh abcd", secrets=secrets)["stdout"] == f"{MASK} {MASK}"
