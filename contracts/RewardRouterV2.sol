// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "./interfaces/IERC20.sol";
import {IGlpManager, IGLP} from "./interfaces/IGmx.sol";

/// @title RewardRouterV2 — GLP mint/redeem entry points plus a WETH reward stream (devnet only).
/// `tokensPerInterval` WETH per second is split pro rata over GLP balances (a cumulative
/// reward-per-token accumulator, 1e30 precision, rounded down for the holder).
contract RewardRouterV2 {
    error NotOwner(address caller);
    error InvalidAmount();

    event StakeGlp(address account, uint256 amount);
    event UnstakeGlp(address account, uint256 amount);
    event Claim(address receiver, uint256 amount);
    event TokensPerIntervalChange(uint256 amount);

    uint256 public constant PRECISION = 1e30;

    address public immutable owner;
    address public immutable glpManager;
    address public immutable glp;
    address public immutable weth;

    uint256 public tokensPerInterval;
    uint256 public lastDistributionTime;
    uint256 public cumulativeRewardPerToken;
    mapping(address => uint256) public previousCumulatedRewardPerToken;
    mapping(address => uint256) public claimableReward;

    constructor(address glpManager_, address weth_) {
        owner = msg.sender;
        glpManager = glpManager_;
        glp = IGlpManager(glpManager_).glp();
        weth = weth_;
        lastDistributionTime = block.timestamp;
    }

    /// The reward tracker GMX integrations query (`feeGlpTracker().claimable(account)`): this contract.
    function feeGlpTracker() external view returns (address) {
        return address(this);
    }

    function rewardToken() external view returns (address) {
        return weth;
    }

    function setTokensPerInterval(uint256 amount) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _updateGlobal();
        tokensPerInterval = amount;
        emit TokensPerIntervalChange(amount);
    }

    function mintAndStakeGlp(address token, uint256 amount, uint256 minUsdg, uint256 minGlp)
        external
        returns (uint256 glpAmount)
    {
        if (amount == 0) revert InvalidAmount();
        glpAmount = IGlpManager(glpManager).addLiquidityForAccount(msg.sender, msg.sender, token, amount, minUsdg, minGlp);
        emit StakeGlp(msg.sender, glpAmount);
    }

    function unstakeAndRedeemGlp(address tokenOut, uint256 glpAmount, uint256 minOut, address receiver)
        external
        returns (uint256 amountOut)
    {
        if (glpAmount == 0) revert InvalidAmount();
        emit UnstakeGlp(msg.sender, glpAmount);
        amountOut = IGlpManager(glpManager).removeLiquidityForAccount(msg.sender, tokenOut, glpAmount, minOut, receiver);
    }

    /// Only `claimWeth` does anything on the devnet: pays the caller's accrued WETH.
    function handleRewards(bool, bool, bool, bool, bool, bool claimWeth, bool) external {
        if (!claimWeth) return;
        checkpoint(msg.sender);
        uint256 amount = claimableReward[msg.sender];
        if (amount == 0) return;
        claimableReward[msg.sender] = 0;
        IERC20(weth).transfer(msg.sender, amount);
        emit Claim(msg.sender, amount);
    }

    /// Settles `account`'s rewards up to now at its current balance (GLP calls this before every change).
    function checkpoint(address account) public {
        uint256 cumulative = _updateGlobal();
        uint256 balance = IGLP(glp).balanceOf(account);
        claimableReward[account] += balance * (cumulative - previousCumulatedRewardPerToken[account]) / PRECISION;
        previousCumulatedRewardPerToken[account] = cumulative;
    }

    function claimable(address account) external view returns (uint256) {
        uint256 cumulative = cumulativeRewardPerToken + _pendingPerToken();
        uint256 balance = IGLP(glp).balanceOf(account);
        return claimableReward[account]
            + balance * (cumulative - previousCumulatedRewardPerToken[account]) / PRECISION;
    }

    function _pendingPerToken() internal view returns (uint256) {
        uint256 supply = IGLP(glp).totalSupply();
        if (supply == 0 || block.timestamp <= lastDistributionTime) return 0;
        return tokensPerInterval * (block.timestamp - lastDistributionTime) * PRECISION / supply;
    }

    function _updateGlobal() internal returns (uint256 cumulative) {
        cumulative = cumulativeRewardPerToken + _pendingPerToken();
        cumulativeRewardPerToken = cumulative;
        lastDistributionTime = block.timestamp;
    }
}
