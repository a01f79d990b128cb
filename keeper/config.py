"""Configuration: a TOML file, `KEEPER_`-prefixed environment overrides (`__` nests) and a secrets dir.

Owns the settings schema and turning every validation problem into one ConfigError that lists each
offending field path with its reason. Must not contact the chain (`keeper check-config` does that).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
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


class SignerSettings(_Section):
    """How the keeper signs. `raw` takes `key` (env/secret) or `key_file`; key material is a SecretStr."""

    kind: Literal["none", "raw", "keystore", "remote"] = "none"
    address: Address | None = None
    key: SecretStr | None = None
    key_file: Path | None = None
    keystore_file: Path | None = None
    password_file: Path | None = None
    remote_url: Url | None = None


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
    target_leverage_bps: int = Field(default=30_000, gt=10_000)
    leverage_band_bps: int = Field(default=1_000, gt=0)
    price_move_bps: int = Field(default=1_000, gt=0)
    delta_tolerance_bps: int = Field(default=200, gt=0)
    slippage_bps: int = Field(default=50, gt=0, le=1_000)
    deadline_seconds: int = Field(default=48 * 3600, gt=0)  # must rebalance at least this often
    cost_gate_bps: int = Field(default=500, gt=0)
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
    slippage_bps: int = Field(default=60, gt=0, le=1000)  # netting: leg minimum below the oracle (fee included)
    deadline_seconds: int = Field(default=600, gt=0)
    hedged_assets: list[str] = Field(default_factory=lambda: ["WETH", "WBTC"], min_length=1)
    state_dir: Path = Path(".keeper")

    def keeper_address(self) -> str:
        """The signer's address: configured, or derived from a raw key; the zero address if there is none."""
        if self.signer.address is not None:
            return self.signer.address
        if self.signer.kind == "raw" and self.signer.key is not None:
            from eth_account import Account

            return str(Account.from_key(self.signer.key.get_secret_value()).address)
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
        toml_file = _CONFIG_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, file_secret_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def _describe(error: Any) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "config"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{path}: {message}"


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
    secrets = secrets_dir or os.environ.get("KEEPER_SECRETS_DIR")
    _CONFIG_FILE["path"] = file
    try:
        if secrets is not None:
            return KeeperSettings(_secrets_dir=str(secrets))  # type: ignore[call-arg]
        return KeeperSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ConfigError(f"invalid configuration in {file}:\n  " + "\n  ".join(lines)) from None
    finally:
        _CONFIG_FILE["path"] = None


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
