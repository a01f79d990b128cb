// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";
import {IERC20} from "../interfaces/IERC20.sol";
import {ILyfFarm, ILyfLender, IUniPair} from "./ILyf.sol";

/// @title LyfPosition — a leveraged LP position on a Uniswap V2 pair (devnet only).
/// Holds LP of `pair` (token0 volatile, token1 stable) staked in `farm` and owes both tokens to `lender`.
/// The keeper rebalances it in one transaction; the owner sets the keeper and the post-trade bounds.
///
/// Marks (identical to keeper/decide/lyf.py `simulate()`), all at the oracle price p = feed answer in
/// stable units per volatile unit (answer × 10^stableDecimals / 10^(feedDecimals + volatileDecimals)):
///   LP volatile = lpBalance × reserve0 / totalSupply, LP stable = lpBalance × reserve1 / totalSupply (floor)
///   assets      = (LP volatile + loose volatile) × p + LP stable + loose stable + pending farm rewards
///   equity      = assets − volatile debt × p − stable debt
///   leverage    = assets / equity (1e18: `leverageWad`, floor; type(uint256).max when equity ≤ 0)
///   delta       = LP volatile − volatile debt (volatile units; loose volatile is not counted)
/// "Loose" = the tokens the position holds itself; lpBalance = staked LP + loose LP.
contract LyfPosition {
    error NotOwner(address caller);
    error NotKeeper(address caller);
    error Expired(uint256 deadline, uint256 timestamp);
    error InsufficientOutput(uint256 amountOut, uint256 minOut);
    error LeverageOutOfBounds(uint256 leverageWad, uint256 minLeverageBps, uint256 maxLeverageBps);
    error DeltaOutOfBounds(int256 delta);
    error InvalidPrice(int256 answer);
    error InvalidBounds();
    error InvalidAmount();

    event KeeperSet(address keeper);
    event BoundsSet(uint256 minLeverageBps, uint256 maxLeverageBps, uint256 maxDeltaUnits);
    event Opened(uint256 equityStable, uint256 liquidity, uint256 volatileBorrowed, uint256 stableBorrowed);
    event Rebalanced(
        uint256 lpRemoved,
        int256 swapIn, // > 0: stable in; < 0: volatile in (negated)
        uint256 swapOut,
        int256 repayStable, // < 0: stable borrowed
        uint256 repayVolatile,
        uint256 leverageWad,
        int256 delta
    );

    uint256 internal constant BPS = 10_000;
    uint256 internal constant WAD = 1e18;

    address public immutable owner;
    IUniPair public immutable pair;
    ILyfLender public immutable lender;
    ILyfFarm public immutable farm;
    AggregatorV3Interface public immutable feed;
    IERC20 public immutable volatileToken; // pair.token0()
    IERC20 public immutable stableToken; // pair.token1()
    uint256 internal immutable stableUnit; // 10^stableDecimals
    uint256 internal immutable priceDen; // 10^(feedDecimals + volatileDecimals)

    address public keeper;
    uint256 public minLeverageBps;
    uint256 public maxLeverageBps;
    uint256 public maxDeltaUnits;

    struct Marks {
        uint256 lpVolatile;
        uint256 lpStable;
        uint256 looseVolatile;
        uint256 looseStable;
        uint256 pending;
        uint256 debtVolatile;
        uint256 debtStable;
        uint256 answer;
    }

    constructor(address pair_, address lender_, address farm_, address feed_, address keeper_) {
        owner = msg.sender;
        pair = IUniPair(pair_);
        lender = ILyfLender(lender_);
        farm = ILyfFarm(farm_);
        feed = AggregatorV3Interface(feed_);
        volatileToken = IERC20(IUniPair(pair_).token0());
        stableToken = IERC20(IUniPair(pair_).token1());
        stableUnit = 10 ** stableToken.decimals();
        priceDen = 10 ** (uint256(AggregatorV3Interface(feed_).decimals()) + volatileToken.decimals());
        keeper = keeper_;
        minLeverageBps = 0;
        maxLeverageBps = type(uint256).max / WAD;
        maxDeltaUnits = type(uint256).max;
        volatileToken.approve(lender_, type(uint256).max);
        stableToken.approve(lender_, type(uint256).max);
        IUniPair(pair_).approve(farm_, type(uint256).max);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    // ---- owner ----

    function setKeeper(address keeper_) external onlyOwner {
        keeper = keeper_;
        emit KeeperSet(keeper_);
    }

    /// Post-rebalance bounds: minLeverageBps ≤ leverage (bps) ≤ maxLeverageBps and |delta| ≤ maxDeltaUnits.
    function setBounds(uint256 minLeverageBps_, uint256 maxLeverageBps_, uint256 maxDeltaUnits_) external onlyOwner {
        if (minLeverageBps_ > maxLeverageBps_ || maxLeverageBps_ > type(uint256).max / WAD) revert InvalidBounds();
        minLeverageBps = minLeverageBps_;
        maxLeverageBps = maxLeverageBps_;
        maxDeltaUnits = maxDeltaUnits_;
        emit BoundsSet(minLeverageBps_, maxLeverageBps_, maxDeltaUnits_);
    }

    /// Devnet set-up: pulls `equityStable` from the owner and adds LP worth equity × target at the oracle
    /// price, borrowing the LP's volatile (neutral up to the pair's rounding) and whatever stable the equity
    /// does not cover; the LP is staked. Amounts: x = A·r0 / (p·r0 + r1) volatile (floor), y = ceil(x·r1/r0).
    function open(uint256 equityStable, uint256 targetLeverageBps) external onlyOwner returns (uint256 liquidity) {
        if (equityStable == 0 || targetLeverageBps < BPS) revert InvalidAmount();
        stableToken.transferFrom(msg.sender, address(this), equityStable);
        (uint112 r0, uint112 r1,) = pair.getReserves();
        uint256 assetsTarget = equityStable * targetLeverageBps / BPS;
        uint256 x = assetsTarget * priceDen * r0 / (_price() * stableUnit * r0 + uint256(r1) * priceDen);
        uint256 y = (x * r1 + r0 - 1) / r0;
        uint256 held = stableToken.balanceOf(address(this));
        uint256 stableBorrowed = y > held ? y - held : 0;
        lender.borrow(address(volatileToken), x);
        if (stableBorrowed > 0) lender.borrow(address(stableToken), stableBorrowed);
        volatileToken.transfer(address(pair), x);
        stableToken.transfer(address(pair), y);
        liquidity = pair.mint(address(this));
        farm.stake(liquidity);
        emit Opened(equityStable, liquidity, x, stableBorrowed);
    }

    // ---- keeper ----

    /// One atomic rebalance: claim rewards; unstake and burn `lpToRemove`; if repayStable < 0 borrow
    /// −repayStable stable; swap on the pair (stableToSwap > 0: that much stable in for volatile; < 0:
    /// −stableToSwap volatile in for stable; output ≥ minOut); repay `repayVolatile` volatile and
    /// `repayStable` (> 0) stable; leftovers stay loose. Reverts unless the resulting leverage and delta are
    /// within the owner's bounds.
    function rebalance(
        uint256 lpToRemove,
        int256 stableToSwap,
        uint256 minOut,
        int256 repayStable,
        uint256 repayVolatile,
        uint256 deadline
    ) external returns (uint256 leverageWad_, int256 delta_) {
        if (msg.sender != keeper) revert NotKeeper(msg.sender);
        if (block.timestamp > deadline) revert Expired(deadline, block.timestamp);
        farm.claim();
        if (lpToRemove > 0) {
            farm.withdraw(lpToRemove);
            pair.transfer(address(pair), lpToRemove);
            pair.burn(address(this));
        }
        if (repayStable < 0) lender.borrow(address(stableToken), uint256(-repayStable));
        uint256 swapOut = stableToSwap == 0 ? 0 : _swap(stableToSwap, minOut);
        if (repayVolatile > 0) lender.repay(address(volatileToken), repayVolatile);
        if (repayStable > 0) lender.repay(address(stableToken), uint256(repayStable));

        Marks memory m = _marks();
        leverageWad_ = _leverageWad(m);
        delta_ = int256(m.lpVolatile) - int256(m.debtVolatile);
        if (leverageWad_ < minLeverageBps * (WAD / BPS) || leverageWad_ > maxLeverageBps * (WAD / BPS)) {
            revert LeverageOutOfBounds(leverageWad_, minLeverageBps, maxLeverageBps);
        }
        if (_abs(delta_) > maxDeltaUnits) revert DeltaOutOfBounds(delta_);
        emit Rebalanced(lpToRemove, stableToSwap, swapOut, repayStable, repayVolatile, leverageWad_, delta_);
    }

    // ---- views ----

    /// LP held: staked in the farm plus any loose LP.
    function lpBalance() public view returns (uint256) {
        return farm.balanceOf(address(this)) + pair.balanceOf(address(this));
    }

    /// Debts including interest accrued up to this block.
    function debts() public view returns (uint256 volatileDebt, uint256 stableDebt) {
        volatileDebt = lender.debtOf(address(this), address(volatileToken));
        stableDebt = lender.debtOf(address(this), address(stableToken));
    }

    function pendingRewards() public view returns (uint256) {
        return farm.pendingRewards(address(this));
    }

    /// Both debts as a rebalance mined at `timestamp` (≥ this block's) will see them, if neither lender reserve
    /// is touched before (LyfLender.debtAt): the keeper plans the repayments for the block that executes them.
    function debtsAt(uint256 timestamp) external view returns (uint256 volatileDebt, uint256 stableDebt) {
        volatileDebt = lender.debtAt(address(this), address(volatileToken), timestamp);
        stableDebt = lender.debtAt(address(this), address(stableToken), timestamp);
    }

    /// Farm rewards the rebalance's claim will collect at `timestamp` (LyfFarm.pendingRewardsAt).
    function pendingRewardsAt(uint256 timestamp) external view returns (uint256) {
        return farm.pendingRewardsAt(address(this), timestamp);
    }

    /// (LP volatile, LP stable, loose volatile, loose stable, pending rewards).
    function holdings() external view returns (uint256, uint256, uint256, uint256, uint256) {
        Marks memory m = _marks();
        return (m.lpVolatile, m.lpStable, m.looseVolatile, m.looseStable, m.pending);
    }

    function leverageWad() external view returns (uint256) {
        return _leverageWad(_marks());
    }

    function leverageBps() external view returns (uint256) {
        uint256 lev = _leverageWad(_marks());
        return lev == type(uint256).max ? lev : lev / (WAD / BPS);
    }

    /// LP volatile − volatile debt (volatile units).
    function delta() external view returns (int256) {
        Marks memory m = _marks();
        return int256(m.lpVolatile) - int256(m.debtVolatile);
    }

    // ---- internals ----

    function _swap(int256 stableToSwap, uint256 minOut) internal returns (uint256 amountOut) {
        (uint112 r0, uint112 r1,) = pair.getReserves();
        if (stableToSwap > 0) {
            uint256 amountIn = uint256(stableToSwap);
            amountOut = _amountOut(amountIn, r1, r0);
            if (amountOut < minOut) revert InsufficientOutput(amountOut, minOut);
            stableToken.transfer(address(pair), amountIn);
            pair.swap(amountOut, 0, address(this), "");
        } else {
            uint256 amountIn = uint256(-stableToSwap);
            amountOut = _amountOut(amountIn, r0, r1);
            if (amountOut < minOut) revert InsufficientOutput(amountOut, minOut);
            volatileToken.transfer(address(pair), amountIn);
            pair.swap(0, amountOut, address(this), "");
        }
    }

    /// UniswapV2Library.getAmountOut (0.3% fee, rounded down).
    function _amountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut) internal pure returns (uint256) {
        uint256 amountInWithFee = amountIn * 997;
        return amountInWithFee * reserveOut / (reserveIn * 1000 + amountInWithFee);
    }

    function _price() internal view returns (uint256) {
        (, int256 answer,,,) = feed.latestRoundData();
        if (answer <= 0) revert InvalidPrice(answer);
        return uint256(answer);
    }

    function _marks() internal view returns (Marks memory m) {
        (uint112 r0, uint112 r1,) = pair.getReserves();
        uint256 supply = pair.totalSupply();
        uint256 lp = lpBalance();
        if (supply > 0) {
            m.lpVolatile = lp * r0 / supply;
            m.lpStable = lp * r1 / supply;
        }
        m.looseVolatile = volatileToken.balanceOf(address(this));
        m.looseStable = stableToken.balanceOf(address(this));
        m.pending = pendingRewards();
        (m.debtVolatile, m.debtStable) = debts();
        m.answer = _price();
    }

    /// assets / equity with both scaled by 10^(feedDecimals + volatileDecimals) (exact integers), × 1e18, floor.
    function _leverageWad(Marks memory m) internal view returns (uint256) {
        uint256 pn = m.answer * stableUnit;
        uint256 assets = (m.lpVolatile + m.looseVolatile) * pn + (m.lpStable + m.looseStable + m.pending) * priceDen;
        uint256 liabilities = m.debtVolatile * pn + m.debtStable * priceDen;
        if (assets <= liabilities) return type(uint256).max;
        return assets * WAD / (assets - liabilities);
    }

    function _abs(int256 v) internal pure returns (uint256) {
        return v >= 0 ? uint256(v) : uint256(-v);
    }
}
