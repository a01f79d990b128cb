// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "./interfaces/IERC20.sol";
import {IGmxVault, IGLP} from "./interfaces/IGmx.sol";

/// @title GlpManager — GMX v1 AUM, GLP price, mint and redeem (devnet only; flat mint/burn fee, no tax).
contract GlpManager {
    error NotOwner(address caller);
    error NotHandler(address caller);
    error InvalidAmount();
    error InsufficientUsdgOutput(uint256 usdg, uint256 minUsdg);
    error InsufficientGlpOutput(uint256 glp, uint256 minGlp);
    error InsufficientOutput(uint256 amountOut, uint256 minOut);

    event AddLiquidity(
        address account,
        address token,
        uint256 amount,
        uint256 aumInUsdg,
        uint256 glpSupply,
        uint256 usdgAmount,
        uint256 mintAmount
    );
    event RemoveLiquidity(
        address account,
        address token,
        uint256 glpAmount,
        uint256 aumInUsdg,
        uint256 glpSupply,
        uint256 usdgAmount,
        uint256 amountOut
    );

    uint256 public constant PRICE_PRECISION = 1e30;
    uint256 public constant GLP_PRECISION = 1e18;
    uint256 public constant BASIS_POINTS_DIVISOR = 10_000;
    uint256 public constant cooldownDuration = 0;

    address public immutable owner;
    address public immutable vault;
    address public immutable glp;
    address public handler; // the RewardRouterV2

    constructor(address vault_, address glp_) {
        owner = msg.sender;
        vault = vault_;
        glp = glp_;
    }

    function setHandler(address handler_) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        handler = handler_;
    }

    function getGlobalShortAveragePrice(address token) public view returns (uint256) {
        return IGmxVault(vault).globalShortAveragePrices(token);
    }

    function getAums() external view returns (uint256[] memory amounts) {
        amounts = new uint256[](2);
        amounts[0] = getAum(true);
        amounts[1] = getAum(false);
    }

    function getAumInUsdg(bool maximise) public view returns (uint256) {
        return getAum(maximise) * 1e18 / PRICE_PRECISION;
    }

    /// GLP price (1e30) = AUM / supply; 1e30 while the supply is 0.
    function getPrice(bool maximise) external view returns (uint256) {
        uint256 supply = IGLP(glp).totalSupply();
        if (supply == 0) return PRICE_PRECISION;
        return getAum(maximise) * GLP_PRECISION / supply;
    }

    /// AUM (1e30) = Σ stables pool × price + Σ volatile (guaranteedUsd + (pool − reserved) × price)
    /// + short losses − short profits (floored at 0). Each term rounds down.
    function getAum(bool maximise) public view returns (uint256) {
        IGmxVault v = IGmxVault(vault);
        uint256 length = v.allWhitelistedTokensLength();
        uint256 aum = 0;
        uint256 shortProfits = 0;
        for (uint256 i = 0; i < length; ++i) {
            address token = v.allWhitelistedTokens(i);
            uint256 price = maximise ? v.getMaxPrice(token) : v.getMinPrice(token);
            uint256 pool = v.poolAmounts(token);
            uint256 unit = 10 ** v.tokenDecimals(token);
            if (v.stableTokens(token)) {
                aum += pool * price / unit;
                continue;
            }
            uint256 size = v.globalShortSizes(token);
            if (size > 0) {
                uint256 avg = getGlobalShortAveragePrice(token);
                if (avg > 0) {
                    uint256 diff = price > avg ? price - avg : avg - price;
                    uint256 delta = size * diff / avg;
                    if (price > avg) aum += delta; // traders' shorts lose: the pool gains
                    else shortProfits += delta; // traders' shorts win: the pool owes
                }
            }
            aum += v.guaranteedUsd(token);
            aum += (pool - v.reservedAmounts(token)) * price / unit;
        }
        return shortProfits > aum ? 0 : aum - shortProfits;
    }

    /// Mint: tokens valued at the min price after the flat fee (fee rounds up, in feeReserves);
    /// GLP out = usdg × supply / aumInUsdg(true) measured before the deposit, rounded down.
    function addLiquidityForAccount(
        address fundingAccount,
        address account,
        address token,
        uint256 amount,
        uint256 minUsdg,
        uint256 minGlp
    ) external returns (uint256) {
        if (msg.sender != handler) revert NotHandler(msg.sender);
        if (amount == 0) revert InvalidAmount();
        IGmxVault v = IGmxVault(vault);
        uint256 aumInUsdg = getAumInUsdg(true);
        uint256 supply = IGLP(glp).totalSupply();

        uint256 afterFee = amount * (BASIS_POINTS_DIVISOR - v.mintBurnFeeBasisPoints()) / BASIS_POINTS_DIVISOR;
        uint256 fee = amount - afterFee;
        uint256 usdg = afterFee * v.getMinPrice(token) / 10 ** (v.tokenDecimals(token) + 12);
        if (usdg < minUsdg) revert InsufficientUsdgOutput(usdg, minUsdg);
        uint256 mintAmount = (supply == 0 || aumInUsdg == 0) ? usdg : usdg * supply / aumInUsdg;
        if (mintAmount < minGlp) revert InsufficientGlpOutput(mintAmount, minGlp);

        IERC20(token).transferFrom(fundingAccount, vault, amount);
        v.increasePool(token, afterFee, fee, usdg);
        IGLP(glp).mint(account, mintAmount);
        emit AddLiquidity(account, token, amount, aumInUsdg, supply, usdg, mintAmount);
        return mintAmount;
    }

    /// Redeem: usdg = glp × aumInUsdg(false) / supply; tokens at the max price; the flat fee (rounds up)
    /// stays in feeReserves; the receiver gets the rest (rounded down).
    function removeLiquidityForAccount(
        address account,
        address tokenOut,
        uint256 glpAmount,
        uint256 minOut,
        address receiver
    ) external returns (uint256) {
        if (msg.sender != handler) revert NotHandler(msg.sender);
        if (glpAmount == 0) revert InvalidAmount();
        IGmxVault v = IGmxVault(vault);
        uint256 aumInUsdg = getAumInUsdg(false);
        uint256 supply = IGLP(glp).totalSupply();

        uint256 usdg = glpAmount * aumInUsdg / supply;
        uint256 redemption = usdg * 10 ** (v.tokenDecimals(tokenOut) + 12) / v.getMaxPrice(tokenOut);
        uint256 amountOut =
            redemption * (BASIS_POINTS_DIVISOR - v.mintBurnFeeBasisPoints()) / BASIS_POINTS_DIVISOR;
        if (amountOut < minOut) revert InsufficientOutput(amountOut, minOut);

        IGLP(glp).burn(account, glpAmount);
        v.decreasePool(tokenOut, redemption, redemption - amountOut, usdg, receiver);
        emit RemoveLiquidity(account, tokenOut, glpAmount, aumInUsdg, supply, usdg, amountOut);
        return amountOut;
    }
}
