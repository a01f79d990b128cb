// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IRewardCheckpoint {
    function checkpoint(address account) external;
}

/// @title GLP — 18-decimal ERC20 minted and burned by the GlpManager. Every balance change first
/// checkpoints the reward tracker (RewardRouterV2) for the accounts involved.
contract GLP {
    error NotOwner(address caller);
    error NotMinter(address caller);
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error InsufficientAllowance(address spender, uint256 allowance, uint256 needed);

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    string public constant name = "GMX LP";
    string public constant symbol = "GLP";
    uint8 public constant decimals = 18;

    address public immutable owner;
    address public minter;
    address public rewardTracker;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    constructor() {
        owner = msg.sender;
    }

    function setMinter(address minter_) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        minter = minter_;
    }

    function setRewardTracker(address tracker) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        rewardTracker = tracker;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _checkpoint(to);
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function burn(address from, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _checkpoint(from);
        uint256 bal = balanceOf[from];
        if (bal < amount) revert InsufficientBalance(from, bal, amount);
        unchecked {
            balanceOf[from] = bal - amount;
        }
        totalSupply -= amount;
        emit Transfer(from, address(0), amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _transfer(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < amount) revert InsufficientAllowance(msg.sender, allowed, amount);
            allowance[from][msg.sender] = allowed - amount;
        }
        _transfer(from, to, amount);
        return true;
    }

    function _transfer(address from, address to, uint256 amount) internal {
        _checkpoint(from);
        _checkpoint(to);
        uint256 bal = balanceOf[from];
        if (bal < amount) revert InsufficientBalance(from, bal, amount);
        unchecked {
            balanceOf[from] = bal - amount;
        }
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }

    function _checkpoint(address account) internal {
        address tracker = rewardTracker;
        if (tracker != address(0)) IRewardCheckpoint(tracker).checkpoint(account);
    }
}
