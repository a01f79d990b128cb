// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The Pool's per-reserve ledger views that the reserve tokens delegate to (devnet Pool only).
interface IReserveLedger {
    function collateralOf(address user, address asset) external view returns (uint256);
    function debtOf(address user, address asset) external view returns (uint256);
    function totalCollateralOf(address asset) external view returns (uint256);
    function totalDebtOf(address asset) external view returns (uint256);
}

interface IERC20Symbol {
    function symbol() external view returns (string memory);
}

/// Shared read surface of Aave v3's AToken and VariableDebtToken: `POOL()`, `UNDERLYING_ASSET_ADDRESS()`,
/// `name()`, `symbol()`, `decimals()`, `balanceOf(user)`, `totalSupply()`. Deployed by
/// `Pool.configureReserve`, one pair per reserve; the balances are views over the Pool's ledger.
abstract contract ReserveToken {
    address public immutable POOL; // solhint-disable-line var-name-mixedcase
    address public immutable UNDERLYING_ASSET_ADDRESS; // solhint-disable-line var-name-mixedcase
    uint8 public immutable decimals;
    string public name;
    string public symbol;

    constructor(address underlying, uint8 decimals_, string memory prefix) {
        POOL = msg.sender;
        UNDERLYING_ASSET_ADDRESS = underlying;
        decimals = decimals_;
        string memory sym = IERC20Symbol(underlying).symbol();
        name = string.concat("Devnet Pool ", prefix, sym);
        symbol = string.concat(prefix, sym);
    }

    function balanceOf(address user) public view returns (uint256) {
        return _ledgerBalance(IReserveLedger(POOL), user);
    }

    function totalSupply() public view returns (uint256) {
        return _ledgerTotal(IReserveLedger(POOL));
    }

    function _ledgerBalance(IReserveLedger pool, address user) internal view virtual returns (uint256);

    function _ledgerTotal(IReserveLedger pool) internal view virtual returns (uint256);
}

/// Aave v3 aToken views (devnet): the supplied balance of the reserve.
/// Collateral earns nothing here (liquidity index = 1 ray), so scaled and actual balances are equal.
/// Not transferable: only the views the keeper reads exist (Aave's aTokens are ERC20-transferable).
contract AToken is ReserveToken {
    constructor(address underlying, uint8 decimals_) ReserveToken(underlying, decimals_, "a") {}

    function scaledBalanceOf(address user) external view returns (uint256) {
        return balanceOf(user);
    }

    function scaledTotalSupply() external view returns (uint256) {
        return totalSupply();
    }

    function _ledgerBalance(IReserveLedger pool, address user) internal view override returns (uint256) {
        return pool.collateralOf(user, UNDERLYING_ASSET_ADDRESS);
    }

    function _ledgerTotal(IReserveLedger pool) internal view override returns (uint256) {
        return pool.totalCollateralOf(UNDERLYING_ASSET_ADDRESS);
    }
}

/// Aave v3 VariableDebtToken views (devnet): debt including interest accrued to this block (balances
/// round up, against the borrower). `totalSupply()` is the reserve's total variable debt over all
/// borrowers, tracked on its own index like Aave's scaled total, so it may differ from the sum of the
/// balances by rounding (a few units). Not transferable, as in Aave.
contract VariableDebtToken is ReserveToken {
    constructor(address underlying, uint8 decimals_) ReserveToken(underlying, decimals_, "variableDebt") {}

    function _ledgerBalance(IReserveLedger pool, address user) internal view override returns (uint256) {
        return pool.debtOf(user, UNDERLYING_ASSET_ADDRESS);
    }

    function _ledgerTotal(IReserveLedger pool) internal view override returns (uint256) {
        return pool.totalDebtOf(UNDERLYING_ASSET_ADDRESS);
    }
}
