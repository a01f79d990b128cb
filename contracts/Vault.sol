// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IERC20} from "./interfaces/IERC20.sol";

/// @title Vault — the GMX v1 Vault views the keeper reads, with settable accounting (devnet only).
/// Holds the pool's tokens. Prices come from Chainlink feeds scaled to 30 decimals; min/max prices apply
/// a per-token spread. Only the manager (GlpManager) moves pool amounts and fee reserves.
contract Vault {
    error NotOwner(address caller);
    error NotManager(address caller);
    error TokenNotWhitelisted(address token);
    error InvalidPrice(address token, int256 answer);
    error PoolAmountExceeded(address token, uint256 pool, uint256 needed);

    event SetTokenConfig(address indexed token, address feed, uint256 decimals, uint256 weight, bool isStable);
    event IncreasePoolAmount(address token, uint256 amount);
    event DecreasePoolAmount(address token, uint256 amount);
    event CollectSwapFees(address token, uint256 feeTokens);

    uint256 public constant PRICE_PRECISION = 1e30;
    uint256 public constant BASIS_POINTS_DIVISOR = 10_000;

    address public immutable owner;
    address public manager;

    uint256 public mintBurnFeeBasisPoints = 30;
    uint256 public taxBasisPoints = 50;
    uint256 public stableTaxBasisPoints = 20;
    uint256 public totalTokenWeights;

    address[] public allWhitelistedTokens;
    mapping(address => bool) public whitelistedTokens;
    mapping(address => bool) public stableTokens;
    mapping(address => uint256) public tokenDecimals;
    mapping(address => uint256) public tokenWeights;
    mapping(address => address) public priceFeeds;
    mapping(address => uint256) public spreadBasisPoints;

    mapping(address => uint256) public poolAmounts;
    mapping(address => uint256) public reservedAmounts;
    mapping(address => uint256) public guaranteedUsd;
    mapping(address => uint256) public globalShortSizes;
    mapping(address => uint256) public globalShortAveragePrices;
    mapping(address => uint256) public usdgAmounts;
    mapping(address => uint256) public feeReserves;

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    modifier onlyManager() {
        if (msg.sender != manager) revert NotManager(msg.sender);
        _;
    }

    constructor() {
        owner = msg.sender;
    }

    function allWhitelistedTokensLength() external view returns (uint256) {
        return allWhitelistedTokens.length;
    }

    /// Chainlink answer scaled to 30 decimals (8-decimal feeds: × 1e22).
    function _refPrice(address token) internal view returns (uint256) {
        if (!whitelistedTokens[token]) revert TokenNotWhitelisted(token);
        AggregatorV3Interface feed = AggregatorV3Interface(priceFeeds[token]);
        (, int256 answer,,,) = feed.latestRoundData();
        if (answer <= 0) revert InvalidPrice(token, answer);
        return uint256(answer) * 10 ** (30 - uint256(feed.decimals()));
    }

    /// p × (1 − spread), rounded down.
    function getMinPrice(address token) public view returns (uint256) {
        return _refPrice(token) * (BASIS_POINTS_DIVISOR - spreadBasisPoints[token]) / BASIS_POINTS_DIVISOR;
    }

    /// p × (1 + spread), rounded down.
    function getMaxPrice(address token) public view returns (uint256) {
        return _refPrice(token) * (BASIS_POINTS_DIVISOR + spreadBasisPoints[token]) / BASIS_POINTS_DIVISOR;
    }

    // ---- owner setters (accounting only) ----

    function setTokenConfig(address token, address feed, uint256 decimals, uint256 weight, bool isStable)
        external
        onlyOwner
    {
        if (!whitelistedTokens[token]) {
            whitelistedTokens[token] = true;
            allWhitelistedTokens.push(token);
        }
        totalTokenWeights = totalTokenWeights - tokenWeights[token] + weight;
        priceFeeds[token] = feed;
        tokenDecimals[token] = decimals;
        tokenWeights[token] = weight;
        stableTokens[token] = isStable;
        emit SetTokenConfig(token, feed, decimals, weight, isStable);
    }

    function setPoolAmount(address token, uint256 amount) external onlyOwner {
        poolAmounts[token] = amount;
    }

    function setReservedAmount(address token, uint256 amount) external onlyOwner {
        reservedAmounts[token] = amount;
    }

    function setGuaranteedUsd(address token, uint256 usd) external onlyOwner {
        guaranteedUsd[token] = usd;
    }

    function setGlobalShortSize(address token, uint256 usd) external onlyOwner {
        globalShortSizes[token] = usd;
    }

    function setGlobalShortAveragePrice(address token, uint256 price) external onlyOwner {
        globalShortAveragePrices[token] = price;
    }

    function setSpreadBasisPoints(address token, uint256 bps) external onlyOwner {
        spreadBasisPoints[token] = bps;
    }

    function setFees(uint256 mintBurnFeeBps, uint256 taxBps, uint256 stableTaxBps) external onlyOwner {
        mintBurnFeeBasisPoints = mintBurnFeeBps;
        taxBasisPoints = taxBps;
        stableTaxBasisPoints = stableTaxBps;
    }

    function setManager(address manager_) external onlyOwner {
        manager = manager_;
    }

    // ---- manager hooks (GlpManager mint / redeem) ----

    /// Tokens already transferred in: `amountIn` splits into `fee` (feeReserves) and the rest (poolAmounts).
    function increasePool(address token, uint256 amountAfterFee, uint256 fee, uint256 usdg) external onlyManager {
        poolAmounts[token] += amountAfterFee;
        feeReserves[token] += fee;
        usdgAmounts[token] += usdg;
        emit IncreasePoolAmount(token, amountAfterFee);
        emit CollectSwapFees(token, fee);
    }

    /// Removes `redemption` tokens from the pool, keeps `fee` of them in feeReserves, sends the rest to `to`.
    function decreasePool(address token, uint256 redemption, uint256 fee, uint256 usdg, address to)
        external
        onlyManager
    {
        uint256 pool = poolAmounts[token];
        if (pool < redemption) revert PoolAmountExceeded(token, pool, redemption);
        poolAmounts[token] = pool - redemption;
        feeReserves[token] += fee;
        uint256 u = usdgAmounts[token];
        usdgAmounts[token] = u > usdg ? u - usdg : 0;
        emit DecreasePoolAmount(token, redemption);
        emit CollectSwapFees(token, fee);
        IERC20(token).transfer(to, redemption - fee);
    }
}
