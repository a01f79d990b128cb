"""Configuration: a TOML file, `KEEPER_`-prefixed environment overrides (`__` nests) and a secrets dir.

Precedence, highest first: environment variables (`KEEPER_CHAIN__RPC_URLS`), then files in the secrets
directory (`KEEPER_SECRETS_DIR`; one file per setting, named like the variable without the prefix:
`signer__key`, `store__database_url`), then the TOML file, then the defaults. Lists and tables given by a
variable or a secrets file are JSON (`KEEPER_CHAIN__RPC_URLS='["https://a", "https://b"]'`).

Owns the settings schema and turning every problem — a validation error, or a variable / secrets file
that cannot be decoded — into one ConfigError that names each offending field path (and the variable or
file it came from) with its reason, never a value. Must not contact the chain (`keeper check-config`
does that); reading the signer's public address from a keystore file is the only file it opens besides
the config and the secrets.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from keeper.errors import ConfigError

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    from eth_utils.address import to_checksum_address  # local: keeps import cost off pure paths

    return str(to_checksum_address(value))


def _url(value: str) -> str:
    if not re.match(r"^(https?|wss?)://[^\s]+$", value):
        raise ValueError("must be an http(s):// or ws(s):// URL")
    return value


Address = Annotated[str, AfterValidator(_address)]
Url = Annotated[str, AfterValidator(_url)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainSettings(_Section):
    chain_id: int = Field(gt=0)
    rpc_urls: list[Url] = Field(min_length=1)
    send_url: Url | None = None  # private / MEV-protected endpoint; public broadcast after send_fallback_blocks
    send_fallback_blocks: int = Field(default=3, ge=1)
    send_private_max_failures: int = Field(default=3, ge=1)  # consecutive private send failures → public broadcast
    request_timeout_seconds: float = Field(default=5.0, gt=0)  # one try per endpoint, then failover
    max_head_lag_blocks: int = Field(default=3, ge=0)  # an endpoint further behind the others is failed over
    failover_cooldown_seconds: float = Field(default=30.0, gt=0)  # a failed endpoint is avoided this long
    head_probe_seconds: float = Field(default=5.0, gt=0)  # every endpoint's head is checked this often
    confirmations: int = Field(default=2, ge=0)


class GasSettings(_Section):
    """EIP-1559 pricing from eth_feeHistory; caps are hard: nothing is ever sent above them."""

    priority_percentile: int = Field(default=50, ge=1, le=99)
    max_fee_per_gas_wei: int = Field(default=200 * 10**9, gt=0)
    max_priority_fee_per_gas_wei: int = Field(default=5 * 10**9, ge=0)
    max_fee_per_tx_wei: int = Field(default=5 * 10**16, gt=0)
    replace_after_blocks: int = Field(default=3, ge=1)
    bump_bps: int = Field(default=1250, ge=1250)  # replacements need >= 12.5% on both fee fields
    legacy: bool = False


class StoreSettings(_Section):
    """The journal: SQLite in `state_dir` by default, PostgreSQL (with the HA lease) when a URL is set."""

    database_url: SecretStr | None = None
    lease_name: str = "sender"
    lease_seconds: float = Field(default=15.0, gt=0)


class MetricsSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class ScheduleSettings(_Section):
    poll_seconds: float = Field(default=0.5, gt=0)
    in_flight_seconds: float = Field(default=1.0, gt=0)
    grace_seconds: float = Field(default=20.0, gt=0)
    heartbeat_max_age_seconds: float = Field(default=30.0, gt=0)


class SafetySettings(_Section):
    dry_run: bool = False  # decide, net, simulate, log: never sign
    paused: bool = False  # also: the pause file exists
    pause_file: Path | None = None  # default: <state_dir>/PAUSE
    max_notional_usd_per_rebalance: int = Field(default=5_000_000, gt=0)
    max_rebalances_per_hour: int = Field(default=6, gt=0)
    min_signer_balance_wei: int = Field(default=5 * 10**16, ge=0)
    allowed_selectors: list[str] = Field(default_factory=list)  # empty: the VaultManager keeper functions


class OracleAssetSettings(_Section):
    heartbeat_seconds: int = Field(default=3900, gt=0)
    max_divergence_bps: int = Field(default=100, gt=0, le=10_000)


class OracleSettings(_Section):
    default: OracleAssetSettings = OracleAssetSettings()
    assets: dict[str, OracleAssetSettings] = Field(default_factory=dict)


class ContractSettings(_Section):
    vault_manager: Address
    multicall: Address
    gmx_vault: Address
    glp_manager: Address
    reward_router: Address
    pool: Address
    glp: Address
    # where the fee ledger's depositor scan (VaultManager `Deposited` logs) starts: the VaultManager's
    # deployment block (0 scans from genesis: correct, only slower on a long chain)
    deployed_at_block: int = Field(default=0, ge=0)


class SignerSettings(_Section):
    """How the keeper signs. `raw` takes `key` (env/secret) or `key_file`; key material is a SecretStr."""

    kind: Literal["none", "raw", "keystore", "remote"] = "none"
    address: Address | None = None  # required for "remote"; for "keystore" it must match the file's address
    key: SecretStr | None = None
    key_file: Path | None = None
    keystore_file: Path | None = None
    password_file: Path | None = None
    remote_url: Url | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        """Each kind names what it needs; a remote signer's address is configured, never discovered, so the
        keeper cannot silently start signing for whichever account the signer lists first."""
        needs = {
            "keystore": ("keystore_file", "password_file"),
            "remote": ("remote_url", "address"),
        }.get(self.kind, ())
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"kind {self.kind!r} needs {' and '.join(missing)}")
        if self.kind == "raw" and self.key is None and self.key_file is None:
            raise ValueError("kind 'raw' needs key (KEEPER_SIGNER__KEY or the secrets file signer__key) or key_file")
        return self


class VaultSettings(_Section):
    """Per-vault name and rule overrides (any field of keeper.decide.Rules; the rest keep their defaults)."""

    id: int = Field(ge=0)
    name: str = ""
    rules: dict[str, int | str | list[str]] = Field(default_factory=dict)


class LyfPositionSettings(_Section):
    """One leveraged-LP position the keeper keeps at target leverage and delta-neutral (keeper.decide.lyf)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")  # a metric label: short and bounded
    position: Address  # the position contract (keeper-only `rebalance`)
    pair: Address  # its x·y=k pool (token0 = volatile, token1 = stable)
    volatile: Address
    stable: Address
    feed: Address  # Chainlink-style oracle: stable per volatile
    feed_heartbeat_seconds: int = Field(default=3900, gt=0)  # an older answer is stale: no trade
    # the planner's own ranges (keeper.decide.lyf.RULE_RANGES), so a bad value is named here at load time
    target_leverage_bps: int = Field(default=30_000, gt=10_000, le=1_000_000)  # above 1×, at most 100×
    leverage_band_bps: int = Field(default=1_000, gt=0, le=1_000_000)
    price_move_bps: int = Field(default=1_000, gt=0, le=1_000_000)
    delta_tolerance_bps: int = Field(default=200, gt=0, le=1_000_000)
    slippage_bps: int = Field(default=50, gt=0, le=1_000)
    deadline_seconds: int = Field(default=48 * 3600, gt=0, le=10 * 365 * 86_400)  # must rebalance this often
    cost_gate_bps: int = Field(default=500, gt=0, le=1_000_000)
    gas_units: int = Field(default=400_000, gt=0)  # the cost gate's gas estimate (measured: ~360k)
    gas_price_wei: int = Field(default=100_000_000, ge=0)  # the cost gate's gas price (0.1 gwei)
    tx_deadline_seconds: int = Field(default=600, gt=0)  # the transaction's own deadline argument
    retry_after_blocks: int = Field(default=10, ge=1)  # after a failed LYF intent, wait before re-planning


class LyfSettings(_Section):
    positions: list[LyfPositionSettings] = Field(default_factory=list)


class KeeperSettings(BaseSettings):
    """The whole configuration. Build it with `load_config(path)`."""

    model_config = SettingsConfigDict(
        env_prefix="KEEPER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    chain: ChainSettings
    contracts: ContractSettings
    signer: SignerSettings = SignerSettings()
    gas: GasSettings = GasSettings()
    store: StoreSettings = StoreSettings()
    metrics: MetricsSettings = MetricsSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    safety: SafetySettings = SafetySettings()
    oracle: OracleSettings = OracleSettings()
    default_rules: dict[str, int | str | list[str]] = Field(default_factory=dict)
    vaults: list[VaultSettings] = Field(default_factory=list)
    lyf: LyfSettings = LyfSettings()
    # netting: each GLP leg's minimum sits fee + slippage_bps below the oracle. With the reference fee 30 and
    # maxSlippageBps 100, 35 leaves 35 bps on both sides: above the contract's floor and below the expected fill.
    slippage_bps: int = Field(default=35, gt=0, le=1000)
    deadline_seconds: int = Field(default=600, gt=0)
    hedged_assets: list[str] = Field(default_factory=lambda: ["WETH", "WBTC"], min_length=1)
    state_dir: Path = Path(".keeper")

    def keeper_address(self) -> str:
        """The signer's address, without unlocking anything: a keystore's from its JSON "address" field
        (checked against `signer.address` when both are given), a remote signer's from `signer.address`
        (required), a raw key's derived from the key; the zero address for kind "none" without an address.
        ConfigError (naming the file, never key material) when it cannot be read."""
        s = self.signer
        if s.kind == "keystore" and s.keystore_file is not None:
            found = keystore_address(s.keystore_file)
            if s.address is not None and s.address != found:
                raise ConfigError(f"signer.address {s.address} does not match keystore {s.keystore_file} ({found})")
            return found
        if s.address is not None:
            return s.address
        if s.kind == "raw":
            if s.key is not None:
                return _key_address(s.key.get_secret_value(), "signer.key")
            if s.key_file is not None:
                try:
                    text = s.key_file.read_text()
                except (OSError, UnicodeDecodeError) as exc:
                    what = exc.__class__.__name__
                    raise ConfigError(f"signer.key_file {s.key_file}: cannot be read ({what})") from None
                return _key_address(text, f"signer.key_file {s.key_file}")
        return "0x" + "00" * 20

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit init values, then environment, then secrets dir, then the TOML file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        secrets_dir = _SOURCES.get("secrets")
        if secrets_dir is not None:
            sources.append(_SecretsSource(file_secret_settings, secrets_dir=secrets_dir, secrets_prefix="",
                                          secrets_nested_delimiter="__", secrets_dir_missing="error"))
        toml_file = _SOURCES.get("toml")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


_SOURCES: dict[str, Path | None] = {"toml": None, "secrets": None}


def keystore_address(path: Path) -> str:
    """The checksummed address in an encrypted keystore's JSON ("address", with or without 0x); the key
    stays encrypted."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"signer.keystore_file {path}: cannot be read ({exc.__class__.__name__})") from None
    except json.JSONDecodeError:
        raise ConfigError(f"signer.keystore_file {path}: not valid JSON") from None
    raw = data.get("address") if isinstance(data, dict) else None
    text = raw if isinstance(raw, str) else ""
    text = text if text.lower().startswith("0x") else "0x" + text
    if not _ADDRESS.match(text):
        raise ConfigError(f"signer.keystore_file {path}: no \"address\" field (set signer.address)")
    return _address(text)


def _key_address(text: str, source: str) -> str:
    from eth_account import Account

    address: str | None = None
    try:
        address = str(Account.from_key(text.strip()).address)
    except Exception:  # the library's message may quote its input: never chain or repeat it
        address = None
    if address is None:
        raise ConfigError(f"{source}: not a valid secp256k1 private key")
    return address


class _SourceValueError(ValueError):
    """A variable or secrets file that could not be decoded; `where` names it (never its value)."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


class _NamedSource(EnvSettingsSource):
    """Decoding errors name the variable (or secrets file) they came from instead of only the top field."""

    label = "environment variable"

    def _name(self, key: str) -> str:
        return f"{self.label} {key.upper()}"

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except _SourceValueError:
            raise
        except ValueError:
            culprit = self._culprit(field_name, field)
        # raised outside the handler: no __context__ leads back to the decoder error, which holds the value
        raise _SourceValueError(culprit)

    def _culprit(self, field_name: str, field: FieldInfo) -> str:
        top = f"{self.env_prefix}{field_name}"
        if not self.case_sensitive:
            top = top.lower()
        for key, text in self.env_vars.items():
            if key == top:
                if text is not None:
                    try:
                        json.loads(text)
                    except ValueError:
                        return self._name(key)
            elif key.startswith(top + (self.env_nested_delimiter or "\0")):
                try:
                    super().explode_env_vars(field_name, field, {key: text})
                except ValueError:
                    return self._name(key)
        return self._name(top)


class _EnvSource(_NamedSource):
    pass


class _SecretsSource(_NamedSource, NestedSecretsSettingsSource):
    label = "secrets file"

    def _name(self, key: str) -> str:
        return f"{self.label} {key}"


def _origin(loc: tuple[Any, ...], env: Mapping[str, str], secret_files: set[str]) -> str:
    """Where the value at `loc` came from, when a variable or secrets file set it (or a table above it)."""
    parts = [str(p).lower() for p in loc]
    for n in range(len(parts), 0, -1):
        name = "__".join(parts[:n])
        if "keeper_" + name in env:
            return f" (from environment variable KEEPER_{name.upper()})"
        if name in secret_files:
            return f" (from secrets file {name})"
    return ""


def _describe(error: Any, origin: str = "") -> str:
    path = ".".join(str(part) for part in error["loc"]) or "config"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{path}: {message}{origin}"


def load_config(path: Path | str, *, secrets_dir: Path | str | None = None) -> KeeperSettings:
    """Load and validate; every problem is reported at once as a ConfigError (the CLI exits 2)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {file}: not found")
    try:
        tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {file}: cannot be read ({exc.__class__.__name__})") from None
    secrets_text = secrets_dir or os.environ.get("KEEPER_SECRETS_DIR") or None
    secrets = None if secrets_text is None else Path(secrets_text)
    secret_files: set[str] = set()
    if secrets is not None:
        if not secrets.is_dir():
            what = "not found" if not secrets.exists() else "not a directory"
            raise ConfigError(f"secrets dir {secrets} (KEEPER_SECRETS_DIR): {what}")
        secret_files = {p.name.lower() for p in secrets.iterdir() if not p.name.startswith(".")}
    _SOURCES.update(toml=file, secrets=secrets)
    # Errors are raised after the handlers, so no exception chain leads back to the inputs (which may be
    # secrets); the messages name fields, variables and files only.
    try:
        return KeeperSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        env = {k.lower(): v for k, v in os.environ.items()}
        lines = [_describe(error, _origin(error["loc"], env, secret_files)) for error in exc.errors()]
        message = f"invalid configuration in {file}:\n  " + "\n  ".join(lines)
    except SettingsError as exc:
        cause = exc.__cause__
        if isinstance(cause, _SourceValueError):
            message = (f"invalid configuration: {cause.where}: not valid JSON (lists and tables set this way "
                       "are JSON, e.g. '[\"https://a\", \"https://b\"]')")
        else:
            message = f"invalid configuration: {exc}"  # pydantic-settings' own messages never quote values
    finally:
        _SOURCES.update(toml=None, secrets=None)
    raise ConfigError(message)


def render_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for the configs the devnet produces (str, int, bool, lists, one level of tables,
    inline tables inside lists)."""

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        if isinstance(value, dict):  # inline table (inside lists, e.g. [[vaults]] entries)
            return "{" + ", ".join(f"{k} = {scalar(v)}" for k, v in value.items() if v is not None) + "}"
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    top = [f"{k} = {scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            body = "\n".join(f"{k} = {scalar(v)}" for k, v in value.items() if v is not None)
            tables.append(f"[{key}]\n{body}")
    return "\n".join(top) + ("\n\n" if top else "") + "\n\n".join(tables) + "\n"
