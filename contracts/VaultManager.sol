// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IERC20} from "./interfaces/IERC20.sol";
import {IGlpManager, IGmxVault, IRewardRouterV2} from "./interfaces/IGmx.sol";
import {IPool} from "./interfaces/IPool.sol";

/// @title VaultManager — one GLP position and one lending-pool account shared by several vaults.
/// Each vault keeps a book (GLP, idle cash, collateral, debt per asset) and its own shares. The keeper
/// moves the books with `rebalance(Order)`: the order declares per-vault deltas that must exactly add up
/// to the trades it executes (conservation, GLP per asset leg), each GLP trade carries an oracle-checked
/// minimum, and what the market gives above a leg's minimum (the surplus) is credited only to the vaults
/// on the trading side of that leg.
///
/// Rounding: shares minted on deposit and tokens paid on withdrawal round down (for the receiver);
/// pro-rata splits round down and the integer remainder goes to the vault with the largest weight
/// (lowest id on a tie); USD valuations (1e30) round down.
contract VaultManager {
    // ---- errors ----
    error NotOwner(address caller);
    error NotKeeper(address caller);
    error IsPaused();
    error Expired(uint256 deadline, uint256 timestamp);
    error UnknownVault(uint256 vault);
    error UnknownAsset(uint8 asset);
    error LengthMismatch();
    error DuplicateLeg(uint8 asset);
    error DuplicateVault(uint256 vault);
    error ConservationViolated(uint8 instrument, uint8 asset, int256 declared, int256 executed);
    error BoundTooLoose(uint8 asset, uint256 minimumUsd, uint256 requiredUsd);
    error FillOutsideBound(address token, uint256 executed, uint256 minimum);
    error InsufficientBook(uint256 vault, uint8 instrument, uint8 asset);
    error InterestOverclaimed(uint8 asset, uint256 claimed, uint256 available);
    error InsufficientShares(uint256 available, uint256 requested);
    error InvalidAmount();
    error InvalidLimits();
    error InvalidPrice(uint8 asset);
    error ZeroEquity(uint256 vault);
    error NoSurplusRecipient(uint8 asset);

    // ---- events ----
    event VaultAdded(uint256 indexed vault, uint8 denomination);
    event Deposited(uint256 indexed vault, address indexed user, uint256 amount, uint256 shares);
    event WithdrawRequested(uint256 indexed vault, address indexed user, uint256 shares);
    event WithdrawalPaid(uint256 indexed vault, address indexed user, uint256 shares, uint256 amount);
    event BufferProcessed(uint256 indexed vault, uint256 depositsMoved, uint256 withdrawalsPaid);
    event Harvested(uint256 rewards, uint256 protocolFee, uint256 riskOffAmount, uint256 glpMinted);
    event GlpTraded(
        uint256 indexed rebalanceId, address indexed token, int256 glpDelta, uint256 tokenAmount, uint256 feeTokens, uint256 surplus
    );
    event LendingMoved(
        uint256 indexed rebalanceId, address indexed token, int256 supplyDelta, int256 borrowDelta, uint256 interest
    );
    event BookChanged(
        uint256 indexed rebalanceId, uint256 indexed vault, uint256 glp, uint256[] cash, uint256[] collateral, uint256[] debt
    );
    event Rebalanced(uint256 indexed rebalanceId, uint8 flags, uint256 timestamp);
    event KeeperSet(address keeper);
    event Paused(bool paused);
    event LimitsSet(uint256 maxSlippageBps, uint256 protocolFeeBps, uint256 riskOffShareBps, uint256 harvestSlippageBps);
    event RecipientsSet(address treasury, address riskOff);

    // ---- types ----
    struct Book {
        uint8 denomination; // asset index
        uint256 glp; // GLP units held for the vault
        uint256[] cash; // idle tokens per asset; cash[denomination] is the vault's buffer
        uint256[] collateral; // supplied to the pool per asset
        uint256[] debt; // borrowed per asset, interest attributed so far
        uint256 pendingDeposits; // denomination units deposited, not yet moved into the buffer
        uint256 pendingWithdrawalShares; // shares queued for withdrawal
        uint256 totalShares;
    }

    /// glp > 0: mint with exactly tokenAmount of assets[asset], at least glp GLP out.
    /// glp < 0: redeem exactly -glp GLP into assets[asset], at least tokenAmount out.
    struct GlpLeg {
        uint8 asset;
        int256 glp;
        uint256 tokenAmount;
    }

    struct VaultDelta {
        uint256 vault;
        int256[] glp; // per asset: nominal GLP change through that asset's leg (book change = Σ)
        int256[] cash; // per asset, nominal
        int256[] collateral; // per asset, exact
        int256[] debt; // per asset, exact (borrow/repay plus attributed interest)
    }

    struct Order {
        uint256 deadline;
        uint8 flags; // 1 = harvest first, 2 = recurring cycle, 4 = profit settlement
        GlpLeg[] glp; // at most one leg per asset
        int256[] supply; // per asset: > 0 supply, < 0 withdraw (exact)
        int256[] borrow; // per asset: > 0 borrow, < 0 repay (exact)
        uint256[] interest; // per asset: accrued pool interest attributed to books by this order
        uint256[] processVaults; // processBuffers for these vaults after the trades
        VaultDelta[] deltas;
    }

    struct Withdrawal {
        address user;
        uint256 shares;
    }

    uint8 internal constant GLP_INSTRUMENT = 0;
    uint8 internal constant CASH = 1;
    uint8 internal constant COLLATERAL = 2;
    uint8 internal constant DEBT = 3;
    uint8 internal constant FLAG_HARVEST = 1;
    uint8 internal constant FLAG_CYCLE = 2;
    uint8 internal constant FLAG_PROFIT = 4;
    uint8 internal constant NO_ASSET = type(uint8).max;
    uint256 internal constant BPS = 10_000;

    // ---- wiring ----
    address public immutable owner;
    IRewardRouterV2 public immutable rewardRouter;
    IGlpManager public immutable glpManager;
    IERC20 public immutable glp;
    IGmxVault public immutable gmxVault;
    IPool public immutable pool;
    IERC20 public immutable weth;

    address[] public assets;
    address[] public feeds;
    uint8[] internal assetDecimals;
    uint8 internal wethIndex = NO_ASSET;

    address public keeper;
    address public treasury;
    address public riskOff;
    bool public paused;

    uint256 public maxSlippageBps = 100;
    uint256 public protocolFeeBps = 1850;
    uint256 public riskOffShareBps = 1000;
    uint256 public harvestSlippageBps = 100;

    uint256 public rebalanceCount;
    uint256 public lastRebalanceAt;
    uint256 public lastCycleAt;
    uint256 public lastProfitAt;
    uint256 public lastHarvestAt;

    Book[] internal books;
    mapping(uint256 => mapping(address => uint256)) public sharesOf;
    mapping(uint256 => Withdrawal[]) internal queues;
    mapping(uint256 => uint256) public queueHead;

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    modifier onlyKeeper() {
        if (msg.sender != keeper) revert NotKeeper(msg.sender);
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert IsPaused();
        _;
    }

    constructor(
        address[] memory assets_,
        address[] memory feeds_,
        address rewardRouter_,
        address pool_,
        address keeper_,
        address treasury_,
        address riskOff_
    ) {
        if (assets_.length != feeds_.length || assets_.length == 0 || assets_.length >= NO_ASSET) {
            revert LengthMismatch();
        }
        owner = msg.sender;
        rewardRouter = IRewardRouterV2(rewardRouter_);
        glpManager = IGlpManager(rewardRouter.glpManager());
        glp = IERC20(rewardRouter.glp());
        gmxVault = IGmxVault(glpManager.vault());
        pool = IPool(pool_);
        weth = IERC20(rewardRouter.weth());
        keeper = keeper_;
        treasury = treasury_;
        riskOff = riskOff_;
        for (uint256 i = 0; i < assets_.length; ++i) {
            assets.push(assets_[i]);
            feeds.push(feeds_[i]);
            assetDecimals.push(IERC20(assets_[i]).decimals());
            IERC20(assets_[i]).approve(address(glpManager), type(uint256).max);
            IERC20(assets_[i]).approve(pool_, type(uint256).max);
            if (assets_[i] == address(weth)) wethIndex = uint8(i);
        }
        if (wethIndex == NO_ASSET) weth.approve(address(glpManager), type(uint256).max);
    }

    // =====================================================================================
    // views
    // =====================================================================================

    function vaultCount() external view returns (uint256) {
        return books.length;
    }

    function assetCount() external view returns (uint256) {
        return assets.length;
    }

    function getBook(uint256 vaultId) external view returns (Book memory) {
        _checkVault(vaultId);
        return books[vaultId];
    }

    /// Books of vaults `from` (inclusive) to `to` (exclusive), `to` clamped to `vaultCount()`.
    function getBooks(uint256 from, uint256 to) external view returns (Book[] memory out) {
        if (to > books.length) to = books.length;
        if (from >= to) return new Book[](0);
        out = new Book[](to - from);
        for (uint256 i = from; i < to; ++i) {
            out[i - from] = books[i];
        }
    }

    /// Queued withdrawals of a vault not yet paid (FIFO order).
    function pendingWithdrawals(uint256 vaultId) external view returns (Withdrawal[] memory out) {
        Withdrawal[] storage q = queues[vaultId];
        uint256 head = queueHead[vaultId];
        out = new Withdrawal[](q.length - head);
        for (uint256 i = head; i < q.length; ++i) {
            out[i - head] = q[i];
        }
    }

    /// Pool debt − Σ book debt for an asset: interest accrued but not yet attributed (never negative).
    function unassignedDebt(uint8 asset) public view returns (uint256) {
        if (asset >= assets.length) revert UnknownAsset(asset);
        uint256 poolDebt = pool.debtOf(address(this), assets[asset]);
        uint256 booked = 0;
        for (uint256 v = 0; v < books.length; ++v) {
            booked += books[v].debt[asset];
        }
        return poolDebt > booked ? poolDebt - booked : 0;
    }

    /// Vault equity in USD (1e30): GLP at getAum(false) / supply, tokens at their feeds, pending deposits
    /// included; floored at 0.
    function equityUsd(uint256 vaultId) public view returns (uint256) {
        _checkVault(vaultId);
        Book storage b = books[vaultId];
        uint256 plus = _glpUsd(b.glp) + _usd(b.denomination, b.pendingDeposits);
        uint256 minus = 0;
        for (uint256 i = 0; i < assets.length; ++i) {
            uint8 a = uint8(i);
            plus += _usd(a, b.cash[i] + b.collateral[i]);
            minus += _usd(a, b.debt[i]);
        }
        return plus > minus ? plus - minus : 0;
    }

    /// Price of one whole asset token in USD (1e30) from its Chainlink feed.
    function priceOf(uint8 asset) public view returns (uint256) {
        if (asset >= assets.length) revert UnknownAsset(asset);
        AggregatorV3Interface feed = AggregatorV3Interface(feeds[asset]);
        (, int256 answer,,,) = feed.latestRoundData();
        if (answer <= 0) revert InvalidPrice(asset);
        return uint256(answer) * 10 ** (30 - uint256(feed.decimals()));
    }

    // =====================================================================================
    // owner
    // =====================================================================================

    function addVault(uint8 denomination) external onlyOwner returns (uint256 vaultId) {
        if (denomination >= assets.length) revert UnknownAsset(denomination);
        vaultId = books.length;
        Book storage b = books.push();
        b.denomination = denomination;
        uint256 n = assets.length;
        b.cash = new uint256[](n);
        b.collateral = new uint256[](n);
        b.debt = new uint256[](n);
        emit VaultAdded(vaultId, denomination);
    }

    function setKeeper(address keeper_) external onlyOwner {
        keeper = keeper_;
        emit KeeperSet(keeper_);
    }

    function pause() external onlyOwner {
        paused = true;
        emit Paused(true);
    }

    function unpause() external onlyOwner {
        paused = false;
        emit Paused(false);
    }

    function setLimits(uint256 maxSlippageBps_, uint256 protocolFeeBps_, uint256 riskOffShareBps_, uint256 harvestSlippageBps_)
        external
        onlyOwner
    {
        if (maxSlippageBps_ > BPS || protocolFeeBps_ > BPS || riskOffShareBps_ > BPS || harvestSlippageBps_ > BPS) {
            revert InvalidLimits();
        }
        maxSlippageBps = maxSlippageBps_;
        protocolFeeBps = protocolFeeBps_;
        riskOffShareBps = riskOffShareBps_;
        harvestSlippageBps = harvestSlippageBps_;
        emit LimitsSet(maxSlippageBps_, protocolFeeBps_, riskOffShareBps_, harvestSlippageBps_);
    }

    function setRecipients(address treasury_, address riskOff_) external onlyOwner {
        treasury = treasury_;
        riskOff = riskOff_;
        emit RecipientsSet(treasury_, riskOff_);
    }

    // =====================================================================================
    // users
    // =====================================================================================

    /// Pulls `amount` of the denomination into pendingDeposits and mints shares at equity / totalShares
    /// (rounded down); the first deposit mints amount × 10^(18 − decimals).
    function deposit(uint256 vaultId, uint256 amount) external whenNotPaused returns (uint256 shares) {
        _checkVault(vaultId);
        if (amount == 0) revert InvalidAmount();
        Book storage b = books[vaultId];
        uint8 d = b.denomination;
        if (b.totalShares == 0) {
            shares = amount * 10 ** (18 - uint256(assetDecimals[d]));
        } else {
            uint256 equity = equityUsd(vaultId);
            if (equity == 0) revert ZeroEquity(vaultId);
            shares = _usd(d, amount) * b.totalShares / equity;
        }
        if (shares == 0) revert InvalidAmount();
        IERC20(assets[d]).transferFrom(msg.sender, address(this), amount);
        b.pendingDeposits += amount;
        b.totalShares += shares;
        sharesOf[vaultId][msg.sender] += shares;
        emit Deposited(vaultId, msg.sender, amount, shares);
    }

    /// Queues `shares` (taken from the caller's balance) for a FIFO payout by processBuffers.
    function requestWithdraw(uint256 vaultId, uint256 shares) external {
        _checkVault(vaultId);
        if (shares == 0) revert InvalidAmount();
        uint256 have = sharesOf[vaultId][msg.sender];
        if (have < shares) revert InsufficientShares(have, shares);
        sharesOf[vaultId][msg.sender] = have - shares;
        books[vaultId].pendingWithdrawalShares += shares;
        queues[vaultId].push(Withdrawal(msg.sender, shares));
        emit WithdrawRequested(vaultId, msg.sender, shares);
    }

    // =====================================================================================
    // keeper
    // =====================================================================================

    function processBuffers(uint256[] calldata vaultIds) external onlyKeeper whenNotPaused {
        _processBuffers(vaultIds);
    }

    function harvest() external onlyKeeper whenNotPaused {
        _harvest();
    }

    function rebalance(Order calldata order) external onlyKeeper whenNotPaused {
        if (block.timestamp > order.deadline) revert Expired(order.deadline, block.timestamp);
        (int256[] memory legCash, int256[] memory legGlp) = _checkShape(order);
        _checkConservation(order, legCash, legGlp);
        _checkBounds(order);
        if (order.flags & FLAG_HARVEST != 0) _harvest();

        uint256 id = ++rebalanceCount;
        uint256[] memory redeemSurplus = _redeem(order, id);
        _moveLending(order, id);
        uint256[] memory mintSurplus = _mint(order, id);
        _applyBooks(order, id, redeemSurplus, mintSurplus);
        if (order.processVaults.length > 0) _processBuffers(order.processVaults);

        lastRebalanceAt = block.timestamp;
        if (order.flags & FLAG_CYCLE != 0) lastCycleAt = block.timestamp;
        if (order.flags & FLAG_PROFIT != 0) lastProfitAt = block.timestamp;
        emit Rebalanced(id, order.flags, block.timestamp);
    }

    // =====================================================================================
    // rebalance internals
    // =====================================================================================

    /// Array lengths, known vaults (no duplicates), one leg per known asset. Returns per asset the cash
    /// each leg moves (−tokenAmount for a mint, +minimum out for a redeem) and its GLP (leg.glp; 0 without
    /// a leg).
    function _checkShape(Order calldata order)
        internal
        view
        returns (int256[] memory legCash, int256[] memory legGlp)
    {
        uint256 n = assets.length;
        if (order.supply.length != n || order.borrow.length != n || order.interest.length != n) {
            revert LengthMismatch();
        }
        legCash = new int256[](n);
        legGlp = new int256[](n);
        bool[] memory seen = new bool[](n);
        for (uint256 k = 0; k < order.glp.length; ++k) {
            GlpLeg calldata leg = order.glp[k];
            if (leg.asset >= n) revert UnknownAsset(leg.asset);
            if (seen[leg.asset]) revert DuplicateLeg(leg.asset);
            seen[leg.asset] = true;
            legCash[leg.asset] = leg.glp >= 0 ? -int256(leg.tokenAmount) : int256(leg.tokenAmount);
            legGlp[leg.asset] = leg.glp;
        }
        bool[] memory vaultSeen = new bool[](books.length);
        for (uint256 k = 0; k < order.deltas.length; ++k) {
            VaultDelta calldata d = order.deltas[k];
            _checkVault(d.vault);
            if (vaultSeen[d.vault]) revert DuplicateVault(d.vault);
            vaultSeen[d.vault] = true;
            if (d.glp.length != n || d.cash.length != n || d.collateral.length != n || d.debt.length != n) {
                revert LengthMismatch();
            }
        }
        for (uint256 k = 0; k < order.processVaults.length; ++k) {
            _checkVault(order.processVaults[k]);
        }
    }

    /// Exact conservation between the books' deltas and the trades, before anything executes: GLP per
    /// asset leg first, then per asset collateral, interest, debt and cash.
    function _checkConservation(Order calldata order, int256[] memory legCash, int256[] memory legGlp)
        internal
        view
    {
        for (uint256 i = 0; i < assets.length; ++i) {
            int256 declaredGlp = 0;
            for (uint256 k = 0; k < order.deltas.length; ++k) {
                declaredGlp += order.deltas[k].glp[i];
            }
            if (declaredGlp != legGlp[i]) revert ConservationViolated(GLP_INSTRUMENT, uint8(i), declaredGlp, legGlp[i]);
        }

        for (uint256 i = 0; i < assets.length; ++i) {
            uint8 a = uint8(i);
            (int256 cash, int256 coll, int256 debt) = _sumDeltas(order.deltas, i);
            if (coll != order.supply[i]) revert ConservationViolated(COLLATERAL, a, coll, order.supply[i]);
            uint256 claimed = order.interest[i];
            if (claimed > 0) {
                uint256 available = unassignedDebt(a);
                if (claimed > available) revert InterestOverclaimed(a, claimed, available);
            }
            int256 debtExecuted = order.borrow[i] + int256(claimed);
            if (debt != debtExecuted) revert ConservationViolated(DEBT, a, debt, debtExecuted);
            int256 cashExecuted = order.borrow[i] - order.supply[i] + legCash[i];
            if (cash != cashExecuted) revert ConservationViolated(CASH, a, cash, cashExecuted);
        }
    }

    function _sumDeltas(VaultDelta[] calldata deltas, uint256 i)
        internal
        pure
        returns (int256 cash, int256 coll, int256 debt)
    {
        for (uint256 k = 0; k < deltas.length; ++k) {
            cash += deltas[k].cash[i];
            coll += deltas[k].collateral[i];
            debt += deltas[k].debt[i];
        }
    }

    /// Each leg's minimum must be worth at least (1 − maxSlippageBps) of what it gives up, at the feeds
    /// and GLP at getAum(false) / supply. `required` rounds up.
    function _checkBounds(Order calldata order) internal view {
        for (uint256 k = 0; k < order.glp.length; ++k) {
            GlpLeg calldata leg = order.glp[k];
            if (leg.glp == 0 && leg.tokenAmount == 0) continue;
            uint256 tokenUsd = _usd(leg.asset, leg.tokenAmount);
            uint256 glpUsd = _glpUsd(_abs(leg.glp));
            (uint256 given, uint256 minimum) = leg.glp > 0 ? (tokenUsd, glpUsd) : (glpUsd, tokenUsd);
            uint256 required = _ceilDiv(given * (BPS - maxSlippageBps), BPS);
            if (minimum < required) revert BoundTooLoose(leg.asset, minimum, required);
        }
    }

    /// Redeems first. Each fill must reach its minimum; returns the surplus tokens per asset.
    function _redeem(Order calldata order, uint256 id) internal returns (uint256[] memory surplus) {
        surplus = new uint256[](assets.length);
        for (uint256 k = 0; k < order.glp.length; ++k) {
            GlpLeg calldata leg = order.glp[k];
            if (leg.glp >= 0) continue;
            IERC20 token = IERC20(assets[leg.asset]);
            uint256 feeBefore = gmxVault.feeReserves(address(token));
            uint256 balBefore = token.balanceOf(address(this));
            rewardRouter.unstakeAndRedeemGlp(address(token), uint256(-leg.glp), 0, address(this));
            uint256 out = token.balanceOf(address(this)) - balBefore;
            if (out < leg.tokenAmount) revert FillOutsideBound(address(token), out, leg.tokenAmount);
            surplus[leg.asset] = out - leg.tokenAmount;
            uint256 fee = gmxVault.feeReserves(address(token)) - feeBefore;
            emit GlpTraded(id, address(token), leg.glp, out, fee, surplus[leg.asset]);
        }
    }

    /// Repays, supplies, withdrawals, borrows (in that order), exact amounts.
    function _moveLending(Order calldata order, uint256 id) internal {
        uint256 n = assets.length;
        for (uint256 i = 0; i < n; ++i) {
            if (order.borrow[i] < 0) pool.repay(assets[i], uint256(-order.borrow[i]), 2, address(this));
        }
        // Supply what the manager holds now; the rest of a supply leg is funded by this order's borrows
        // (one vault's margin bought with tokens another vault borrows) and is supplied after them.
        uint256[] memory deferred = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            if (order.supply[i] <= 0) continue;
            uint256 want = uint256(order.supply[i]);
            uint256 held = IERC20(assets[i]).balanceOf(address(this));
            uint256 first = want < held ? want : held;
            if (first > 0) pool.supply(assets[i], first, address(this), 0);
            deferred[i] = want - first;
        }
        for (uint256 i = 0; i < n; ++i) {
            if (order.supply[i] < 0) pool.withdraw(assets[i], uint256(-order.supply[i]), address(this));
        }
        for (uint256 i = 0; i < n; ++i) {
            if (order.borrow[i] > 0) pool.borrow(assets[i], uint256(order.borrow[i]), 2, 0, address(this));
        }
        for (uint256 i = 0; i < n; ++i) {
            if (deferred[i] > 0) pool.supply(assets[i], deferred[i], address(this), 0);
        }
        for (uint256 i = 0; i < n; ++i) {
            if (order.supply[i] != 0 || order.borrow[i] != 0 || order.interest[i] != 0) {
                emit LendingMoved(id, assets[i], order.supply[i], order.borrow[i], order.interest[i]);
            }
        }
    }

    /// Mints last. Each fill must reach its minimum; returns the surplus GLP per asset.
    function _mint(Order calldata order, uint256 id) internal returns (uint256[] memory surplus) {
        surplus = new uint256[](assets.length);
        for (uint256 k = 0; k < order.glp.length; ++k) {
            GlpLeg calldata leg = order.glp[k];
            if (leg.glp < 0 || leg.tokenAmount == 0) continue;
            address token = assets[leg.asset];
            uint256 feeBefore = gmxVault.feeReserves(token);
            uint256 glpBefore = glp.balanceOf(address(this));
            rewardRouter.mintAndStakeGlp(token, leg.tokenAmount, 0, 0);
            uint256 got = glp.balanceOf(address(this)) - glpBefore;
            uint256 minimum = uint256(leg.glp);
            if (got < minimum) revert FillOutsideBound(token, got, minimum);
            surplus[leg.asset] = got - minimum;
            uint256 fee = gmxVault.feeReserves(token) - feeBefore;
            emit GlpTraded(id, token, int256(got), leg.tokenAmount, fee, got - minimum);
        }
    }

    /// Applies every delta plus its surplus share; a book that would go negative reverts. Each leg's
    /// surplus goes only to the vaults on its trading side: a mint leg in asset i to the vaults with
    /// deltas.glp[i] > 0 pro rata to it (GLP), a redeem leg to the cash[i] of the vaults with
    /// deltas.glp[i] < 0 pro rata to |deltas.glp[i]|. A surplus nobody traded for reverts.
    function _applyBooks(
        Order calldata order,
        uint256 id,
        uint256[] memory redeemSurplus,
        uint256[] memory mintSurplus
    ) internal {
        uint256 m = order.deltas.length;
        uint256 n = assets.length;
        uint256[] memory vaultIds = new uint256[](m);
        for (uint256 k = 0; k < m; ++k) {
            vaultIds[k] = order.deltas[k].vault;
        }
        uint256[] memory glpCredit = new uint256[](m);
        uint256[][] memory cashCredit = new uint256[][](n);
        for (uint256 i = 0; i < n; ++i) {
            cashCredit[i] = new uint256[](m);
            bool isMint = mintSurplus[i] > 0; // at most one leg per asset: never both
            uint256 amount = isMint ? mintSurplus[i] : redeemSurplus[i];
            if (amount == 0) continue;
            uint256[] memory weights = new uint256[](m);
            bool any = false;
            for (uint256 k = 0; k < m; ++k) {
                int256 g = order.deltas[k].glp[i];
                if (isMint ? g > 0 : g < 0) {
                    weights[k] = _abs(g);
                    any = true;
                }
            }
            if (!any) revert NoSurplusRecipient(uint8(i));
            uint256[] memory shares = _split(amount, weights, vaultIds);
            if (isMint) {
                for (uint256 k = 0; k < m; ++k) {
                    glpCredit[k] += shares[k];
                }
            } else {
                cashCredit[i] = shares;
            }
        }
        for (uint256 k = 0; k < m; ++k) {
            _applyDelta(order.deltas[k], id, glpCredit[k], cashCredit, k);
        }
    }

    function _applyDelta(
        VaultDelta calldata d,
        uint256 id,
        uint256 glpCredit,
        uint256[][] memory cashCredit,
        uint256 k
    ) internal {
        Book storage b = books[d.vault];
        uint256 n = assets.length;
        int256 glpDelta = 0;
        for (uint256 i = 0; i < n; ++i) {
            glpDelta += d.glp[i];
        }
        b.glp = _add(b.glp + glpCredit, glpDelta, d.vault, GLP_INSTRUMENT, 0);
        for (uint256 i = 0; i < n; ++i) {
            uint8 a = uint8(i);
            b.cash[i] = _add(b.cash[i] + cashCredit[i][k], d.cash[i], d.vault, CASH, a);
            b.collateral[i] = _add(b.collateral[i], d.collateral[i], d.vault, COLLATERAL, a);
            b.debt[i] = _add(b.debt[i], d.debt[i], d.vault, DEBT, a);
        }
        emit BookChanged(id, d.vault, b.glp, b.cash, b.collateral, b.debt);
    }

    function _add(uint256 value, int256 delta, uint256 vault, uint8 instrument, uint8 asset)
        internal
        pure
        returns (uint256)
    {
        if (delta >= 0) return value + uint256(delta);
        uint256 down = uint256(-delta);
        if (down > value) revert InsufficientBook(vault, instrument, asset);
        return value - down;
    }

    /// Splits `amount` pro rata to `weights` (rounded down); the remainder goes to the largest weight
    /// (lowest vault id on a tie). With all weights zero, every entry weighs the same (harvest only:
    /// `_applyBooks` never passes all-zero weights).
    function _split(uint256 amount, uint256[] memory weights, uint256[] memory vaultIds)
        internal
        pure
        returns (uint256[] memory shares)
    {
        uint256 m = weights.length;
        shares = new uint256[](m);
        if (amount == 0 || m == 0) return shares;
        uint256 total = 0;
        for (uint256 k = 0; k < m; ++k) {
            total += weights[k];
        }
        bool equal = total == 0;
        if (equal) total = m;
        uint256 given = 0;
        uint256 best = 0;
        for (uint256 k = 0; k < m; ++k) {
            uint256 w = equal ? 1 : weights[k];
            shares[k] = amount * w / total;
            given += shares[k];
            uint256 bw = equal ? 1 : weights[best];
            if (w > bw || (w == bw && vaultIds[k] < vaultIds[best])) best = k;
        }
        shares[best] += amount - given;
    }

    // =====================================================================================
    // buffers and harvest
    // =====================================================================================

    /// Pending deposits move into the buffer; queued withdrawals are paid FIFO at the current share price
    /// (rounded down) while the buffer suffices.
    function _processBuffers(uint256[] calldata vaultIds) internal {
        for (uint256 k = 0; k < vaultIds.length; ++k) {
            uint256 v = vaultIds[k];
            _checkVault(v);
            Book storage b = books[v];
            uint8 d = b.denomination;
            uint256 moved = b.pendingDeposits;
            if (moved > 0) {
                b.cash[d] += moved;
                b.pendingDeposits = 0;
            }
            Withdrawal[] storage q = queues[v];
            uint256 head = queueHead[v];
            uint256 paid = 0;
            while (head < q.length) {
                Withdrawal memory w = q[head];
                uint256 amount = w.shares * equityUsd(v) / b.totalShares * 10 ** assetDecimals[d] / priceOf(d);
                if (amount > b.cash[d]) break;
                b.cash[d] -= amount;
                b.totalShares -= w.shares;
                b.pendingWithdrawalShares -= w.shares;
                delete q[head];
                ++head;
                ++paid;
                IERC20(assets[d]).transfer(w.user, amount);
                emit WithdrawalPaid(v, w.user, w.shares, amount);
            }
            queueHead[v] = head;
            emit BufferProcessed(v, moved, paid);
        }
    }

    /// Claims WETH rewards: protocolFeeBps to the treasury, riskOffShareBps of the rest to riskOff (both
    /// rounded down), the remainder minted into GLP (minimum from the oracle less harvestSlippageBps) and
    /// credited to the vaults pro rata to their GLP.
    function _harvest() internal {
        lastHarvestAt = block.timestamp;
        uint256 before = weth.balanceOf(address(this));
        rewardRouter.handleRewards(false, false, false, false, false, true, false);
        uint256 rewards = weth.balanceOf(address(this)) - before;
        if (rewards == 0) {
            emit Harvested(0, 0, 0, 0);
            return;
        }
        uint256 fee = rewards * protocolFeeBps / BPS;
        uint256 riskOffAmount = (rewards - fee) * riskOffShareBps / BPS;
        uint256 rest = rewards - fee - riskOffAmount;
        if (fee > 0) weth.transfer(treasury, fee);
        if (riskOffAmount > 0) weth.transfer(riskOff, riskOffAmount);
        uint256 minted = 0;
        if (rest > 0) {
            uint256 wethUsd = rest * _wethPrice() / 1e18;
            uint256 supply = glp.totalSupply();
            uint256 aum = glpManager.getAum(false);
            uint256 minGlp = aum == 0 ? 0 : wethUsd * supply / aum * (BPS - harvestSlippageBps) / BPS;
            minted = rewardRouter.mintAndStakeGlp(address(weth), rest, 0, minGlp);
            _creditGlp(minted);
        }
        emit Harvested(rewards, fee, riskOffAmount, minted);
    }

    function _creditGlp(uint256 amount) internal {
        uint256 m = books.length;
        if (m == 0) return;
        uint256[] memory weights = new uint256[](m);
        uint256[] memory ids = new uint256[](m);
        for (uint256 v = 0; v < m; ++v) {
            weights[v] = books[v].glp;
            ids[v] = v;
        }
        uint256[] memory shares = _split(amount, weights, ids);
        for (uint256 v = 0; v < m; ++v) {
            books[v].glp += shares[v];
        }
    }

    // =====================================================================================
    // helpers
    // =====================================================================================

    function _checkVault(uint256 vaultId) internal view {
        if (vaultId >= books.length) revert UnknownVault(vaultId);
    }

    function _usd(uint8 asset, uint256 amount) internal view returns (uint256) {
        if (amount == 0) return 0;
        return amount * priceOf(asset) / 10 ** assetDecimals[asset];
    }

    function _glpUsd(uint256 amount) internal view returns (uint256) {
        if (amount == 0) return 0;
        uint256 supply = glp.totalSupply();
        if (supply == 0) return 0;
        return amount * glpManager.getAum(false) / supply;
    }

    function _wethPrice() internal view returns (uint256) {
        if (wethIndex != NO_ASSET) return priceOf(wethIndex);
        return gmxVault.getMinPrice(address(weth));
    }

    function _abs(int256 x) internal pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }

    function _ceilDiv(uint256 a, uint256 b) internal pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }
}
