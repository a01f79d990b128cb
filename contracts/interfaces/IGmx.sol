// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The GMX v1 surfaces used between the devnet contracts (and by VaultManager).
interface IGmxVault {
    function poolAmounts(address token) external view returns (uint256);
    function reservedAmounts(address token) external view returns (uint256);
    function guaranteedUsd(address token) external view returns (uint256);
    function globalShortSizes(address token) external view returns (uint256);
    function globalShortAveragePrices(address token) external view returns (uint256);
    function feeReserves(address token) external view returns (uint256);
    function tokenDecimals(address token) external view returns (uint256);
    function stableTokens(address token) external view returns (bool);
    function allWhitelistedTokensLength() external view returns (uint256);
    function allWhitelistedTokens(uint256 index) external view returns (address);
    function getMinPrice(address token) external view returns (uint256);
    function getMaxPrice(address token) external view returns (uint256);
    function mintBurnFeeBasisPoints() external view returns (uint256);
    function increasePool(address token, uint256 amountAfterFee, uint256 fee, uint256 usdg) external;
    function decreasePool(address token, uint256 redemption, uint256 fee, uint256 usdg, address to) external;
}

interface IGLP {
    function totalSupply() external view returns (uint256);
    function balanceOf(address account) external view returns (uint256);
    function mint(address to, uint256 amount) external;
    function burn(address from, uint256 amount) external;
}

interface IGlpManager {
    function vault() external view returns (address);
    function glp() external view returns (address);
    function getAum(bool maximise) external view returns (uint256);
    function addLiquidityForAccount(
        address fundingAccount,
        address account,
        address token,
        uint256 amount,
        uint256 minUsdg,
        uint256 minGlp
    ) external returns (uint256);
    function removeLiquidityForAccount(
        address account,
        address tokenOut,
        uint256 glpAmount,
        uint256 minOut,
        address receiver
    ) external returns (uint256);
}

interface IRewardRouterV2 {
    function glp() external view returns (address);
    function glpManager() external view returns (address);
    function weth() external view returns (address);
    function claimable(address account) external view returns (uint256);
    function mintAndStakeGlp(address token, uint256 amount, uint256 minUsdg, uint256 minGlp)
        external
        returns (uint256);
    function unstakeAndRedeemGlp(address tokenOut, uint256 glpAmount, uint256 minOut, address receiver)
        external
        returns (uint256);
    function handleRewards(
        bool claimGmx,
        bool stakeGmx,
        bool claimEsGmx,
        bool stakeEsGmx,
        bool stakeMultiplierPoints,
        bool claimWeth,
        bool convertWethToEth
    ) external;
}
