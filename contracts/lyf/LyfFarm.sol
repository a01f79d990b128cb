// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "../interfaces/IERC20.sol";

/// @title LyfFarm — stake LP, earn the reward token per second pro rata (devnet only).
/// Synthetix-style accumulator: `rewardPerShare` (1e30 precision) grows by rewardPerSecond × dt × 1e30 /
/// totalStaked (rounded down) at every update; an account earns balance × Δ rewardPerShare / 1e30 (rounded
/// down). Nothing accrues while nothing is staked. Claims pay from the farm's balance (the owner funds it;
/// an unfunded farm reverts the claim).
contract LyfFarm {
    error NotOwner(address caller);
    error InvalidAmount();
    error PastTimestamp(uint256 timestamp, uint256 blockTimestamp);
    error InsufficientStake(address account, uint256 staked, uint256 amount);

    event RewardRateSet(uint256 rewardPerSecond);
    event Staked(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event Claimed(address indexed account, uint256 amount);

    uint256 internal constant PRECISION = 1e30;

    address public immutable owner;
    IERC20 public immutable lpToken;
    IERC20 public immutable rewardToken;

    uint256 public rewardPerSecond;
    uint256 public rewardPerShareStored;
    uint256 public lastUpdateTime;
    uint256 public totalStaked;
    mapping(address => uint256) public balanceOf;
    mapping(address => uint256) public rewardPerSharePaid;
    mapping(address => uint256) public rewards; // accrued, unclaimed, as of the account's last update

    constructor(address lpToken_, address rewardToken_) {
        owner = msg.sender;
        lpToken = IERC20(lpToken_);
        rewardToken = IERC20(rewardToken_);
        lastUpdateTime = block.timestamp;
    }

    /// Applies from now on (what accrued so far at the old rate is kept).
    function setRewardPerSecond(uint256 rewardPerSecond_) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _update(address(0));
        rewardPerSecond = rewardPerSecond_;
        emit RewardRateSet(rewardPerSecond_);
    }

    function rewardPerShare() public view returns (uint256) {
        return _rewardPerShareAt(block.timestamp);
    }

    /// Rewards `account` could claim in this block.
    function pendingRewards(address account) public view returns (uint256) {
        return _pendingAt(account, block.timestamp);
    }

    /// Rewards `account` could claim at `timestamp` (≥ this block's), provided nothing updates the farm before
    /// (same accumulator and rounding as `pendingRewards`).
    function pendingRewardsAt(address account, uint256 timestamp) external view returns (uint256) {
        if (timestamp < block.timestamp) revert PastTimestamp(timestamp, block.timestamp);
        return _pendingAt(account, timestamp);
    }

    function _rewardPerShareAt(uint256 timestamp) internal view returns (uint256) {
        if (totalStaked == 0) return rewardPerShareStored;
        return rewardPerShareStored + (timestamp - lastUpdateTime) * rewardPerSecond * PRECISION / totalStaked;
    }

    function _pendingAt(address account, uint256 timestamp) internal view returns (uint256) {
        uint256 perShare = _rewardPerShareAt(timestamp) - rewardPerSharePaid[account];
        return rewards[account] + balanceOf[account] * perShare / PRECISION;
    }

    function stake(uint256 amount) external {
        if (amount == 0) revert InvalidAmount();
        _update(msg.sender);
        lpToken.transferFrom(msg.sender, address(this), amount);
        balanceOf[msg.sender] += amount;
        totalStaked += amount;
        emit Staked(msg.sender, amount);
    }

    /// Unstakes `amount` LP to the caller (rewards stay accrued).
    function withdraw(uint256 amount) external {
        if (amount == 0) revert InvalidAmount();
        _update(msg.sender);
        uint256 staked = balanceOf[msg.sender];
        if (staked < amount) revert InsufficientStake(msg.sender, staked, amount);
        balanceOf[msg.sender] = staked - amount;
        totalStaked -= amount;
        lpToken.transfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    /// Pays the caller's pending rewards; returns the amount (0 pays nothing).
    function claim() external returns (uint256 amount) {
        _update(msg.sender);
        amount = rewards[msg.sender];
        if (amount == 0) return 0;
        rewards[msg.sender] = 0;
        rewardToken.transfer(msg.sender, amount);
        emit Claimed(msg.sender, amount);
    }

    function _update(address account) internal {
        rewardPerShareStored = rewardPerShare();
        lastUpdateTime = block.timestamp;
        if (account != address(0)) {
            rewards[account] = pendingRewards(account);
            rewardPerSharePaid[account] = rewardPerShareStored;
        }
    }
}
