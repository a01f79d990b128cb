// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "../interfaces/IERC20.sol";

/// @title LyfLender — lends listed assets to whitelisted borrowers (devnet only).
/// Each listed asset has a variable annual rate (ray) and a borrow index compounded linearly between
/// updates, as `Pool`: index × (1 + rate × dt / 365 days), rounded down. A borrower's debt is remembered
/// as (principal, index at the last touch) and reads ceil(principal × index / userIndex): interest rounds
/// up, and a borrow or repay in the same block moves the debt by exactly the amount. No collateral: the
/// whitelist stands in for a leveraged-yield protocol's position checks. Liquidity is whatever the lender
/// holds (anyone may fund it with `fund` or a plain transfer).
contract LyfLender {
    error NotOwner(address caller);
    error NotBorrower(address caller);
    error UnknownAsset(address asset);
    error InsufficientLiquidity(address asset);
    error InvalidAmount();
    error PastTimestamp(uint256 timestamp, uint256 blockTimestamp);

    event RateSet(address indexed asset, uint256 rateRay);
    event BorrowerSet(address indexed borrower, bool allowed);
    event Funded(address indexed asset, address indexed from, uint256 amount);
    event Borrowed(address indexed borrower, address indexed asset, uint256 amount, uint256 debtAfter);
    event Repaid(address indexed borrower, address indexed asset, uint256 amount, uint256 debtAfter);

    uint256 internal constant RAY = 1e27;
    uint256 internal constant SECONDS_PER_YEAR = 365 days;

    struct Reserve {
        bool listed;
        uint256 rate; // annual, ray
        uint256 index; // ray
        uint256 lastUpdate;
        uint256 totalDebt; // scaled like the user debts at `index`
    }

    struct UserDebt {
        uint256 principal;
        uint256 index;
    }

    address public immutable owner;
    mapping(address => bool) public isBorrower;
    mapping(address => Reserve) internal reserves;
    mapping(address => mapping(address => UserDebt)) internal debts;

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    // ---- owner ----

    /// Lists `asset` (index 1 ray) on first use; otherwise accrues at the old rate first.
    function setRate(address asset, uint256 rateRay) external onlyOwner {
        Reserve storage r = reserves[asset];
        if (!r.listed) {
            r.listed = true;
            r.index = RAY;
            r.lastUpdate = block.timestamp;
        } else {
            _accrue(r);
        }
        r.rate = rateRay;
        emit RateSet(asset, rateRay);
    }

    function allowBorrower(address borrower, bool allowed) external onlyOwner {
        isBorrower[borrower] = allowed;
        emit BorrowerSet(borrower, allowed);
    }

    // ---- views ----

    function rateOf(address asset) external view returns (uint256) {
        return _reserve(asset).rate;
    }

    /// Current borrow index (ray).
    function indexOf(address asset) external view returns (uint256) {
        return _currentIndex(_reserve(asset));
    }

    function totalDebtOf(address asset) external view returns (uint256) {
        Reserve storage r = _reserve(asset);
        return _ceilDiv(r.totalDebt * _currentIndex(r), r.index);
    }

    /// Debt including interest accrued up to this block (rounded up).
    function debtOf(address borrower, address asset) public view returns (uint256) {
        return _debtAt(borrower, _reserve(asset), asset, block.timestamp);
    }

    /// The debt a transaction mined at `timestamp` (≥ this block's) will see, provided nothing touches the
    /// reserve before: the same linear index from its last update and the same rounding as `debtOf`. Lets a
    /// keeper plan a repayment for the block that executes it rather than the block it read.
    function debtAt(address borrower, address asset, uint256 timestamp) external view returns (uint256) {
        if (timestamp < block.timestamp) revert PastTimestamp(timestamp, block.timestamp);
        return _debtAt(borrower, _reserve(asset), asset, timestamp);
    }

    // ---- actions ----

    function fund(address asset, uint256 amount) external {
        _reserve(asset);
        IERC20(asset).transferFrom(msg.sender, address(this), amount);
        emit Funded(asset, msg.sender, amount);
    }

    /// Whitelisted borrowers only; pays `amount` to the caller.
    function borrow(address asset, uint256 amount) external {
        if (!isBorrower[msg.sender]) revert NotBorrower(msg.sender);
        Reserve storage r = _reserve(asset);
        if (amount == 0) revert InvalidAmount();
        if (IERC20(asset).balanceOf(address(this)) < amount) revert InsufficientLiquidity(asset);
        _accrue(r);
        UserDebt storage d = debts[msg.sender][asset];
        uint256 debtAfter = debtOf(msg.sender, asset) + amount;
        d.principal = debtAfter;
        d.index = r.index;
        r.totalDebt += amount;
        IERC20(asset).transfer(msg.sender, amount);
        emit Borrowed(msg.sender, asset, amount, debtAfter);
    }

    /// Repays the caller's own debt; pays min(amount, debt) from the caller and returns it (0 without debt).
    function repay(address asset, uint256 amount) external returns (uint256) {
        Reserve storage r = _reserve(asset);
        _accrue(r);
        uint256 debt = debtOf(msg.sender, asset);
        uint256 paid = amount > debt ? debt : amount;
        if (paid == 0) return 0;
        IERC20(asset).transferFrom(msg.sender, address(this), paid);
        UserDebt storage d = debts[msg.sender][asset];
        d.principal = debt - paid;
        d.index = r.index;
        r.totalDebt = r.totalDebt > paid ? r.totalDebt - paid : 0;
        emit Repaid(msg.sender, asset, paid, debt - paid);
        return paid;
    }

    // ---- internals ----

    function _reserve(address asset) internal view returns (Reserve storage r) {
        r = reserves[asset];
        if (!r.listed) revert UnknownAsset(asset);
    }

    function _debtAt(address borrower, Reserve storage r, address asset, uint256 timestamp)
        internal
        view
        returns (uint256)
    {
        UserDebt storage d = debts[borrower][asset];
        if (d.principal == 0) return 0;
        return _ceilDiv(d.principal * _indexAt(r, timestamp), d.index);
    }

    function _currentIndex(Reserve storage r) internal view returns (uint256) {
        return _indexAt(r, block.timestamp);
    }

    function _indexAt(Reserve storage r, uint256 timestamp) internal view returns (uint256) {
        uint256 dt = timestamp - r.lastUpdate;
        if (dt == 0 || r.rate == 0) return r.index;
        return r.index * (RAY + r.rate * dt / SECONDS_PER_YEAR) / RAY;
    }

    function _accrue(Reserve storage r) internal {
        uint256 index = _currentIndex(r);
        if (index != r.index) r.totalDebt = _ceilDiv(r.totalDebt * index, r.index);
        r.index = index;
        r.lastUpdate = block.timestamp;
    }

    function _ceilDiv(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }
}
