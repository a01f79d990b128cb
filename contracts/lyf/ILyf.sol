// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// Interfaces of the leveraged-LP (LYF) devnet contracts, as used by `LyfPosition`.

/// Uniswap V2 pair (the subset the position needs, plus the LP token's ERC20 functions).
interface IUniPair {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
    function totalSupply() external view returns (uint256);
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
    function approve(address spender, uint256 amount) external returns (bool);
    function mint(address to) external returns (uint256 liquidity);
    function burn(address to) external returns (uint256 amount0, uint256 amount1);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

/// Uniswap V2's flash-swap callback (`IUniswapV2Callee`).
interface IUniPairCallee {
    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external;
}

interface ILyfLender {
    function borrow(address asset, uint256 amount) external;
    function repay(address asset, uint256 amount) external returns (uint256);
    function debtOf(address borrower, address asset) external view returns (uint256);
    function debtAt(address borrower, address asset, uint256 timestamp) external view returns (uint256);
}

interface ILyfFarm {
    function stake(uint256 amount) external;
    function withdraw(uint256 amount) external;
    function claim() external returns (uint256);
    function balanceOf(address account) external view returns (uint256);
    function pendingRewards(address account) external view returns (uint256);
    function pendingRewardsAt(address account, uint256 timestamp) external view returns (uint256);
}
