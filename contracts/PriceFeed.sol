// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";

/// @title PriceFeed — a settable Chainlink AggregatorV3Interface (devnet only).
/// Every update opens a new round; `answeredInRound == roundId`, `startedAt == updatedAt`.
contract PriceFeed is AggregatorV3Interface {
    error NotOwner(address caller);
    error NoDataPresent(uint80 roundId);

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    struct Round {
        int256 answer;
        uint256 updatedAt;
    }

    address public immutable owner;
    uint8 public immutable override decimals;
    string public override description;
    uint256 public constant override version = 4;
    uint80 public latestRound;
    mapping(uint80 => Round) internal rounds;

    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        owner = msg.sender;
        decimals = decimals_;
        description = description_;
        _newRound(initialAnswer, block.timestamp);
    }

    /// New round at the current block time.
    function setAnswer(int256 answer) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _newRound(answer, block.timestamp);
    }

    /// New round with an explicit (possibly stale) update time.
    function setRoundData(int256 answer, uint256 updatedAt) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _newRound(answer, updatedAt);
    }

    function latestAnswer() external view returns (int256) {
        return rounds[latestRound].answer;
    }

    function latestRoundData()
        external
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return _round(latestRound);
    }

    function getRoundData(uint80 roundId_)
        external
        view
        override
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (roundId_ == 0 || roundId_ > latestRound) revert NoDataPresent(roundId_);
        return _round(roundId_);
    }

    function _round(uint80 id) internal view returns (uint80, int256, uint256, uint256, uint80) {
        Round memory r = rounds[id];
        return (id, r.answer, r.updatedAt, r.updatedAt, id);
    }

    function _newRound(int256 answer, uint256 updatedAt) internal {
        uint80 id = latestRound + 1;
        latestRound = id;
        rounds[id] = Round(answer, updatedAt);
        emit AnswerUpdated(answer, id, updatedAt);
    }
}
