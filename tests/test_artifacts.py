"""Compiled artifacts in abis/ must match contracts/: a stale artifact fails the build.

Each artifact's hash covers its compilation unit (its .sol file and everything it imports) and
contracts/compiler.json (the pinned solc version and every compiler setting), so a source, settings or
compiler change without `make abis` fails here too.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from keeper.chain.artifacts import COMPILER_FILE, abi_dir, compiler_config, contracts_dir, is_fresh, source_hash

REPO = contracts_dir().parent


def artifacts() -> list[Path]:
    return sorted(abi_dir().glob("*.json"))


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((abi_dir() / f"{name}.json").read_text())
    return data


def test_every_artifact_is_fresh() -> None:
    found = artifacts()
    assert found, "no artifacts in abis/; run `make abis`"
    stale = [p.name for p in found if not is_fresh(json.loads(p.read_text()))]
    assert not stale, f"stale against contracts/ (run `make abis` and commit): {stale}"


def test_an_artifact_lists_its_whole_compilation_unit() -> None:
    pool = _load("Pool")
    assert pool["sources"] == ["Pool.sol", "ReserveTokens.sol", "interfaces/AggregatorV3Interface.sol",
                               "interfaces/IERC20.sol"]
    assert pool["sourceHash"] == source_hash(pool["sources"])
    assert "lyf/LyfLender.sol" not in pool["sources"]


def test_every_deployable_contract_has_an_artifact() -> None:
    declared: set[str] = set()
    for path in contracts_dir().rglob("*.sol"):
        declared |= set(re.findall(r"^\s*contract\s+(\w+)", path.read_text(), flags=re.MULTILINE))
    names = {p.stem for p in artifacts()}
    assert declared <= names, f"missing artifacts: {sorted(declared - names)}"
    for path in artifacts():
        data = json.loads(path.read_text())
        assert data["bytecode"].startswith("0x") and len(data["bytecode"]) > 10, path.name
        assert isinstance(data["abi"], list) and data["abi"], path.name


def _copy_contracts(tmp_path: Path) -> Path:
    root = tmp_path / "contracts"
    shutil.copytree(contracts_dir(), root, ignore=shutil.ignore_patterns("*.mjs"))
    assert all(is_fresh(_load(p.stem), root) for p in artifacts())  # the copy hashes like the original
    return root


def test_an_edit_to_an_imported_source_makes_only_its_dependants_stale(tmp_path: Path) -> None:
    root = _copy_contracts(tmp_path)
    tokens = root / "ReserveTokens.sol"
    tokens.write_text(tokens.read_text() + "\n")
    stale = {p.stem for p in artifacts() if not is_fresh(_load(p.stem), root)}
    assert stale == {"Pool", "AToken", "VariableDebtToken"}
    (root / "ReserveTokens.sol").unlink()
    assert not is_fresh(_load("Pool"), root)  # a listed source that is gone: stale, not a crash


def test_source_hash_changes_with_any_source_byte(tmp_path: Path) -> None:
    (tmp_path / "A.sol").write_text("contract A {}")
    (tmp_path / COMPILER_FILE).write_text("{}")
    before = source_hash(root=tmp_path)
    assert source_hash(["A.sol"], tmp_path) == before
    (tmp_path / "A.sol").write_text("contract A { }")
    assert source_hash(root=tmp_path) != before


@pytest.mark.parametrize(
    "edit",
    [
        lambda cfg: cfg["settings"]["optimizer"].update(runs=cfg["settings"]["optimizer"]["runs"] + 1),
        lambda cfg: cfg["settings"].update(evmVersion="shanghai"),
        lambda cfg: cfg["settings"].update(viaIR=not cfg["settings"]["viaIR"]),
        lambda cfg: cfg.update(solc="0.8.29"),
    ],
    ids=["optimizer-runs", "evm-version", "via-ir", "solc-version"],
)
def test_a_compiler_settings_or_version_change_makes_every_artifact_stale(tmp_path: Path, edit: object) -> None:
    root = _copy_contracts(tmp_path)
    config = compiler_config(root)
    edit(config)  # type: ignore[operator]
    (root / COMPILER_FILE).write_text(json.dumps(config, indent=2) + "\n")
    assert not [p.stem for p in artifacts() if is_fresh(_load(p.stem), root)]


def test_source_hash_needs_the_compiler_settings(tmp_path: Path) -> None:
    (tmp_path / "A.sol").write_text("contract A {}")
    with pytest.raises(FileNotFoundError, match=COMPILER_FILE):
        source_hash(root=tmp_path)


def test_compiler_pin_matches_npm_and_the_artifacts() -> None:
    pinned = compiler_config()["solc"]
    assert json.loads((REPO / "package.json").read_text())["devDependencies"]["solc"] == pinned
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/solc"]["version"] == pinned
    wrong = [p.name for p in artifacts() if not json.loads(p.read_text())["compiler"].startswith(f"solc-{pinned}+")]
    assert not wrong, f"built with another solc than {pinned}: {wrong}"


def test_compile_script_takes_every_bytecode_setting_from_compiler_json() -> None:
    """compile.mjs is not hashed: a setting written there would escape the staleness check."""
    script = (contracts_dir() / "compile.mjs").read_text()
    for key in ("optimizer", "evmVersion", "viaIR", "bytecodeHash", "remappings", "libraries", "debug"):
        assert not re.search(rf"\b{key}\s*:", script), f"compile.mjs sets {key}; put it in {COMPILER_FILE}"
    assert "...compilerConfig.settings" in script
    assert {"optimizer", "evmVersion", "viaIR", "metadata"} <= set(compiler_config()["settings"])
