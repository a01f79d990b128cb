// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IERC20} from "./interfaces/IERC20.sol";
import {AToken, VariableDebtToken} from "./ReserveTokens.sol";

/// @title Pool — an Aave v3-compatible lending pool (devnet only).
/// The keeper reads it only through Aave v3's own interface: `getUserAccountData`, `getReserveData`
/// (the v3 `ReserveDataLegacy` layout), `getConfiguration` (the v3 bitmap) and the reserve's aToken /
/// variable debt token (`balanceOf`, `totalSupply`), deployed here by `configureReserve`.
/// Collateral earns nothing (liquidity index stays 1 ray). Variable debt grows through a per-asset index
/// (ray) compounded linearly between updates at a settable annual rate. Each user's debt is remembered as
/// (principal, index at the last touch); debt now = ceil(principal × index / userIndex), so interest
/// rounds up (against the borrower) and a borrow or repay in the same block moves the debt by exactly the
/// amount. No liquidations (liquidation bonus 0), no stable rate, no supply cap, no isolation mode.
contract Pool {
    error NotOwner(address caller);
    error HealthFactorTooLow(uint256 healthFactor);
    error LtvExceeded(uint256 debtBase, uint256 maxDebtBase);
    error BorrowCapExceeded(address asset, uint256 totalDebt, uint256 cap);
    error InsufficientLiquidity(address asset);
    error InsufficientCollateral(address asset, uint256 collateral, uint256 needed);
    error NotSupported();
    error UnknownReserve(address asset);
    error InvalidAmount();
    error InvalidReserveConfig(address asset);

    event Supply(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount, uint16 indexed referralCode);
    event Withdraw(address indexed reserve, address indexed user, address indexed to, uint256 amount);
    event Borrow(
        address indexed reserve,
        address user,
        address indexed onBehalfOf,
        uint256 amount,
        uint8 interestRateMode,
        uint256 borrowRate,
        uint16 indexed referralCode
    );
    event Repay(address indexed reserve, address indexed user, address indexed repayer, uint256 amount, bool useATokens);
    event ReserveConfigured(address indexed asset, address feed, uint256 ltv, uint256 liquidationThreshold);

    uint256 internal constant RAY = 1e27;
    uint256 internal constant SECONDS_PER_YEAR = 365 days;
    uint256 internal constant BPS = 10_000;
    /// Aave v3 ReserveConfiguration: borrow cap in whole tokens, bits 80-115.
    uint256 internal constant MAX_VALID_BORROW_CAP = 68_719_476_735;

    struct Reserve {
        address feed;
        uint8 decimals;
        uint16 ltv; // bps
        uint16 liquidationThreshold; // bps
        uint16 id; // position in reservesList
        address aToken;
        address variableDebtToken;
        uint256 borrowCap; // whole tokens, 0 = none
        uint256 rate; // annual variable borrow rate, ray
        uint256 index; // variable borrow index, ray, at lastUpdate
        uint256 lastUpdate;
        uint256 totalDebt; // all borrowers' debt at lastUpdate, grown by the index like the user debts
        uint256 totalCollateral; // all suppliers' collateral (the aToken's total supply)
    }

    /// Aave v3 `DataTypes.ReserveConfigurationMap`.
    struct ReserveConfigurationMap {
        uint256 data;
    }

    /// Aave v3 `DataTypes.ReserveDataLegacy` (the `getReserveData` return of v3.1+, and v3.0's ReserveData).
    struct ReserveDataLegacy {
        ReserveConfigurationMap configuration;
        uint128 liquidityIndex;
        uint128 currentLiquidityRate;
        uint128 variableBorrowIndex;
        uint128 currentVariableBorrowRate;
        uint128 currentStableBorrowRate;
        uint40 lastUpdateTimestamp;
        uint16 id;
        address aTokenAddress;
        address stableDebtTokenAddress;
        address variableDebtTokenAddress;
        address interestRateStrategyAddress;
        uint128 accruedToTreasury;
        uint128 unbacked;
        uint128 isolationModeTotalDebt;
    }

    struct UserDebt {
        uint256 principal;
        uint256 index;
    }

    address public immutable owner;
    address[] public reservesList;
    mapping(address => Reserve) internal reserves;
    mapping(address => mapping(address => uint256)) public collateralOf;
    mapping(address => mapping(address => UserDebt)) internal debts;

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    // ---- owner ----

    function configureReserve(
        address asset,
        address feed,
        uint256 ltvBps,
        uint256 liquidationThresholdBps,
        uint256 borrowCapTokens,
        uint256 borrowRateRay
    ) external onlyOwner {
        if (
            feed == address(0) || ltvBps > liquidationThresholdBps || liquidationThresholdBps > BPS
                || borrowCapTokens > MAX_VALID_BORROW_CAP || borrowRateRay > type(uint128).max
        ) revert InvalidReserveConfig(asset);
        Reserve storage r = reserves[asset];
        if (r.feed == address(0)) {
            r.id = uint16(reservesList.length);
            reservesList.push(asset);
            r.index = RAY;
            r.lastUpdate = block.timestamp;
            r.decimals = IERC20(asset).decimals();
            r.aToken = address(new AToken(asset, r.decimals));
            r.variableDebtToken = address(new VariableDebtToken(asset, r.decimals));
        } else {
            _accrue(r);
        }
        r.feed = feed;
        r.ltv = uint16(ltvBps);
        r.liquidationThreshold = uint16(liquidationThresholdBps);
        r.borrowCap = borrowCapTokens;
        r.rate = borrowRateRay;
        emit ReserveConfigured(asset, feed, ltvBps, liquidationThresholdBps);
    }

    function setBorrowRate(address asset, uint256 rateRay) external onlyOwner {
        Reserve storage r = _reserve(asset);
        if (rateRay > type(uint128).max) revert InvalidReserveConfig(asset);
        _accrue(r);
        r.rate = rateRay;
    }

    function setBorrowCap(address asset, uint256 capTokens) external onlyOwner {
        Reserve storage r = _reserve(asset);
        if (capTokens > MAX_VALID_BORROW_CAP) revert InvalidReserveConfig(asset);
        r.borrowCap = capTokens;
    }

    // ---- Aave v3 views ----

    function getReservesList() external view returns (address[] memory) {
        return reservesList;
    }

    /// The Aave v3 bitmap: LTV bits 0-15, liquidation threshold 16-31 (bps), liquidation bonus 32-47 (0:
    /// no liquidations here), decimals 48-55, active bit 56, borrowing enabled bit 58, borrow cap 80-115
    /// (whole tokens, 0 = none); frozen, paused, reserve factor, supply cap and the rest are 0.
    function getConfiguration(address asset) public view returns (ReserveConfigurationMap memory) {
        Reserve storage r = _reserve(asset);
        return ReserveConfigurationMap(
            uint256(r.ltv) | (uint256(r.liquidationThreshold) << 16) | (uint256(r.decimals) << 48) | (1 << 56)
                | (1 << 58) | (r.borrowCap << 80)
        );
    }

    /// Aave v3 `getReserveData`: the index and timestamp as of the reserve's last update (the current
    /// index is `getReserveNormalizedVariableDebt`), the current variable rate (ray), the token addresses.
    function getReserveData(address asset) external view returns (ReserveDataLegacy memory data) {
        Reserve storage r = _reserve(asset);
        data.configuration = getConfiguration(asset);
        data.liquidityIndex = uint128(RAY);
        data.variableBorrowIndex = uint128(r.index);
        data.currentVariableBorrowRate = uint128(r.rate);
        data.lastUpdateTimestamp = uint40(r.lastUpdate);
        data.id = r.id;
        data.aTokenAddress = r.aToken;
        data.variableDebtTokenAddress = r.variableDebtToken;
    }

    /// Supply index (ray): collateral earns nothing, so always 1 ray.
    function getReserveNormalizedIncome(address asset) external view returns (uint256) {
        _reserve(asset);
        return RAY;
    }

    /// Current variable borrow index (ray): index × (1 + rate × dt / year), rounded down.
    function getReserveNormalizedVariableDebt(address asset) public view returns (uint256) {
        Reserve storage r = _reserve(asset);
        return _currentIndex(r);
    }

    // ---- devnet ledger views (behind the aToken / debt token views; VaultManager reads debtOf) ----

    /// Total variable debt of the reserve to this block (rounded up; the borrow cap counts it).
    function totalDebtOf(address asset) public view returns (uint256) {
        Reserve storage r = _reserve(asset);
        return _ceilDiv(r.totalDebt * _currentIndex(r), r.index);
    }

    function totalCollateralOf(address asset) external view returns (uint256) {
        return _reserve(asset).totalCollateral;
    }

    function debtOf(address user, address asset) public view returns (uint256) {
        Reserve storage r = _reserve(asset);
        UserDebt storage d = debts[user][asset];
        if (d.principal == 0) return 0;
        return _ceilDiv(d.principal * _currentIndex(r), d.index);
    }

    /// Base values in USD with 8 decimals (the feeds' answers); thresholds in bps, weighted by collateral;
    /// health factor = Σ collateralBase × liquidationThreshold / debtBase (1e18, rounded down;
    /// type(uint256).max without debt).
    function getUserAccountData(address user)
        public
        view
        returns (
            uint256 totalCollateralBase,
            uint256 totalDebtBase,
            uint256 availableBorrowsBase,
            uint256 currentLiquidationThreshold,
            uint256 ltv,
            uint256 healthFactor
        )
    {
        Totals memory t = _totals(user);
        totalCollateralBase = t.collateralBase;
        totalDebtBase = t.debtBase;
        if (t.collateralBase > 0) {
            currentLiquidationThreshold = t.weightedLt / t.collateralBase;
            ltv = t.weightedLtv / t.collateralBase;
        }
        uint256 maxDebt = t.weightedLtv / BPS;
        availableBorrowsBase = maxDebt > t.debtBase ? maxDebt - t.debtBase : 0;
        healthFactor = t.debtBase == 0 ? type(uint256).max : t.weightedLt * 1e18 / (t.debtBase * BPS);
    }

    struct Totals {
        uint256 collateralBase;
        uint256 debtBase;
        uint256 weightedLt; // Σ collateralBase × liquidationThreshold (bps)
        uint256 weightedLtv; // Σ collateralBase × ltv (bps)
    }

    /// Collateral base rounds down, debt base rounds up (both against the borrower).
    function _totals(address user) internal view returns (Totals memory t) {
        for (uint256 i = 0; i < reservesList.length; ++i) {
            address asset = reservesList[i];
            Reserve storage r = reserves[asset];
            uint256 coll = collateralOf[user][asset];
            uint256 debt = debtOf(user, asset);
            if (coll == 0 && debt == 0) continue;
            uint256 price = _price(r);
            uint256 unit = 10 ** r.decimals;
            if (coll > 0) {
                uint256 base = coll * price / unit;
                t.collateralBase += base;
                t.weightedLt += base * r.liquidationThreshold;
                t.weightedLtv += base * r.ltv;
            }
            if (debt > 0) t.debtBase += _ceilDiv(debt * price, unit);
        }
    }

    // ---- actions ----

    function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external {
        Reserve storage r = _reserve(asset);
        if (amount == 0) revert InvalidAmount();
        _accrue(r);
        IERC20(asset).transferFrom(msg.sender, address(this), amount);
        collateralOf[onBehalfOf][asset] += amount;
        r.totalCollateral += amount;
        emit Supply(asset, msg.sender, onBehalfOf, amount, referralCode);
    }

    /// `type(uint256).max` withdraws everything. Reverts if the health factor ends below 1.
    function withdraw(address asset, uint256 amount, address to) external returns (uint256) {
        Reserve storage r = _reserve(asset);
        _accrue(r);
        uint256 coll = collateralOf[msg.sender][asset];
        if (amount == type(uint256).max) amount = coll;
        if (amount == 0) revert InvalidAmount();
        if (coll < amount) revert InsufficientCollateral(asset, coll, amount);
        if (IERC20(asset).balanceOf(address(this)) < amount) revert InsufficientLiquidity(asset);
        collateralOf[msg.sender][asset] = coll - amount;
        r.totalCollateral -= amount;
        (,,,,, uint256 hf) = getUserAccountData(msg.sender);
        if (hf < 1e18) revert HealthFactorTooLow(hf);
        IERC20(asset).transfer(to, amount);
        emit Withdraw(asset, msg.sender, to, amount);
        return amount;
    }

    /// Variable rate only (mode 2), no credit delegation (onBehalfOf must be the caller).
    /// Checks the borrow cap, the pool's liquidity, debt ≤ Σ collateral × LTV, and health factor ≥ 1.
    function borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode, address onBehalfOf)
        external
    {
        if (interestRateMode != 2 || onBehalfOf != msg.sender) revert NotSupported();
        Reserve storage r = _reserve(asset);
        if (amount == 0) revert InvalidAmount();
        _accrue(r);
        uint256 totalAfter = r.totalDebt + amount;
        if (r.borrowCap != 0) {
            uint256 cap = r.borrowCap * 10 ** r.decimals;
            if (totalAfter > cap) revert BorrowCapExceeded(asset, totalAfter, cap);
        }
        if (IERC20(asset).balanceOf(address(this)) < amount) revert InsufficientLiquidity(asset);
        UserDebt storage d = debts[msg.sender][asset];
        d.principal = debtOf(msg.sender, asset) + amount;
        d.index = r.index;
        r.totalDebt = totalAfter;
        _checkBorrowAllowed(msg.sender);
        IERC20(asset).transfer(msg.sender, amount);
        emit Borrow(asset, msg.sender, onBehalfOf, amount, 2, r.rate, referralCode);
    }

    /// `type(uint256).max` repays all of `onBehalfOf`'s debt; more than the debt repays the debt.
    function repay(address asset, uint256 amount, uint256 interestRateMode, address onBehalfOf)
        external
        returns (uint256)
    {
        if (interestRateMode != 2) revert NotSupported();
        Reserve storage r = _reserve(asset);
        if (amount == 0) revert InvalidAmount();
        _accrue(r);
        uint256 debt = debtOf(onBehalfOf, asset);
        uint256 paid = amount > debt ? debt : amount;
        if (paid == 0) revert InvalidAmount();
        IERC20(asset).transferFrom(msg.sender, address(this), paid);
        UserDebt storage d = debts[onBehalfOf][asset];
        d.principal = debt - paid;
        d.index = r.index;
        r.totalDebt = r.totalDebt > paid ? r.totalDebt - paid : 0;
        emit Repay(asset, onBehalfOf, msg.sender, paid, false);
        return paid;
    }

    // ---- internals ----

    /// After a borrow: debt ≤ Σ collateral × LTV (LtvExceeded) and health factor ≥ 1 (HealthFactorTooLow).
    function _checkBorrowAllowed(address user) internal view {
        (uint256 collBase, uint256 debtBase,,, uint256 ltv, uint256 hf) = getUserAccountData(user);
        uint256 maxDebt = collBase * ltv / BPS;
        if (debtBase > maxDebt) revert LtvExceeded(debtBase, maxDebt);
        if (hf < 1e18) revert HealthFactorTooLow(hf);
    }

    function _reserve(address asset) internal view returns (Reserve storage r) {
        r = reserves[asset];
        if (r.feed == address(0)) revert UnknownReserve(asset);
    }

    function _currentIndex(Reserve storage r) internal view returns (uint256) {
        uint256 dt = block.timestamp - r.lastUpdate;
        if (dt == 0 || r.rate == 0) return r.index;
        return r.index * (RAY + r.rate * dt / SECONDS_PER_YEAR) / RAY;
    }

    function _accrue(Reserve storage r) internal {
        uint256 index = _currentIndex(r);
        if (index != r.index) r.totalDebt = _ceilDiv(r.totalDebt * index, r.index);
        r.index = index;
        r.lastUpdate = block.timestamp;
    }

    function _price(Reserve storage r) internal view returns (uint256) {
        (, int256 answer,,,) = AggregatorV3Interface(r.feed).latestRoundData();
        return answer > 0 ? uint256(answer) : 0;
    }

    function _ceilDiv(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }
}
