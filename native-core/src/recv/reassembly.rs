//! Receiver side: opened punktfunk/1 packets → whole access units.
//!
//! Feed every opened, replay-checked packet (`header ‖ shard`) to
//! [`Reassembler::push`], call [`Reassembler::poll`] every few milliseconds
//! even when nothing arrives, and drain [`Reassembler::pop_frame`] after
//! each call. Time is injected (`now_ns`, any monotonic clock), so the
//! module is pure.
//!
//! # Model
//!
//! Shards are written straight into a per-frame data area at their final
//! offset, so a complete frame is handed out without a copy (the area is
//! truncated to `frame_bytes`). A block with `k` data shards is complete
//! once all `k` arrived, or once any `k` of its `k + m` shards arrived and
//! the missing data was rebuilt with the [`ErasureCode`] from the caller's
//! [`CodeProvider`]. Parity arriving for a completed block is ignored
//! without being copied.
//!
//! Frames are delivered strictly in `frame_index` order (a decoder cannot
//! use a frame before its predecessor). The oldest undelivered frame is
//! given up — counted in `frames_lost`, and reported to the next delivered
//! frame as [`CompletedFrame::lost_before`] so the caller can request a
//! keyframe — when:
//!
//! * it is still incomplete [`ReassemblyConfig::loss_window_ns`] after its
//!   first packet (or, if none of its packets arrived, after the first
//!   packet of a newer frame); or
//! * with [`ReassemblyConfig::skip_ahead`] (the default), a newer frame is
//!   complete: network reordering across a whole frame is rare, and holding
//!   a complete newer frame back only adds latency to a picture the decoder
//!   cannot repair without a keyframe anyway; or
//! * more than `max_frames_in_flight` frames would otherwise be tracked.
//!
//! # Loss window: 120 ms
//!
//! Long enough for a frame's packets to trickle in under pacing (one frame
//! interval: 8–33 ms at 120–30 fps) plus Wi-Fi jitter and link-layer
//! retransmission bursts (tens of ms); short enough that a stalled frame is
//! reported (and a keyframe requested) before the freeze becomes glaring —
//! beyond ~100 ms a late frame is useless for interactive play anyway.
//!
//! # Bounded memory
//!
//! At most `max_frames_in_flight` frames (default 64, ≥ 260 ms even at
//! 240 fps) are tracked; a frame above `max_frame_bytes` (16 MiB) or
//! `max_shards_per_frame` is refused; all frame buffers in flight plus
//! delivered-but-undrained frames are capped at `max_buffered_bytes`
//! (64 MiB: a few maximal keyframes). Packets that would exceed a limit are
//! dropped and counted. Up to 8 spare buffers are kept for reuse; hand
//! delivered frames back with [`Reassembler::recycle`] to make steady-state
//! reception allocation-free (FEC recovery allocates one small pointer
//! vector per rebuilt block).
//!
//! No input panics: every packet ends in exactly one [`PushOutcome`] and
//! one counter.

use std::collections::VecDeque;
use std::fmt;

use crate::fec::{CodeProvider, ErasureCode, FecScheme};
use crate::packet::pf1::{flags, FrameLayout, PacketError, PacketHeader, HEADER_LEN};

/// Default loss window (see the module docs).
pub const DEFAULT_LOSS_WINDOW_NS: u64 = 120_000_000;
/// Default cap on frames tracked at once.
pub const DEFAULT_MAX_FRAMES_IN_FLIGHT: usize = 64;
/// Default cap on one access unit.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;
/// Default cap on shards (data + parity) per frame: a 16 MiB frame at the
/// default 1408-byte shards is 11916 data shards, so this leaves room for
/// 100 % parity plus smaller shard sizes.
pub const DEFAULT_MAX_SHARDS_PER_FRAME: usize = 32_768;
/// Default cap on all buffered frame bytes.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 << 20;
/// Spare buffers kept for reuse: enough for a couple of frames in flight
/// (data + parity each) while the caller still holds delivered ones.
const SPARE_BUFFERS: usize = 8;
/// Per-slot bookkeeping vectors larger than this many entries are freed
/// when the slot is released, so one huge frame does not pin memory in
/// every slot it ever used.
const RETAINED_METADATA_ENTRIES: usize = 4096;
/// Delivered frames kept while the caller does not drain them; beyond
/// this the oldest are dropped (and counted).
const MAX_READY_FRAMES: usize = 256;
/// Half the u32 frame-index space: the wrap-around comparison horizon.
const HALF_INDEX_SPACE: u32 = 1 << 31;

/// Reassembler settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Give up an incomplete frame this long after its first packet.
    pub loss_window_ns: u64,
    /// Frames tracked at once (also the reordering horizon in frames).
    pub max_frames_in_flight: usize,
    /// Larger access units are refused.
    pub max_frame_bytes: usize,
    /// Frames with more shards (data + parity) are refused.
    pub max_shards_per_frame: usize,
    /// Cap on bytes held in frame buffers (in flight + undrained).
    pub max_buffered_bytes: usize,
    /// Give up older incomplete frames as soon as a newer one is complete.
    pub skip_ahead: bool,
    /// The stream's first frame index, if the session knows it (usually
    /// 0). Without it the first frame *seen* starts the stream, so a first
    /// frame of which nothing arrives — typically the initial keyframe —
    /// goes unnoticed.
    pub first_frame_index: Option<u32>,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            loss_window_ns: DEFAULT_LOSS_WINDOW_NS,
            max_frames_in_flight: DEFAULT_MAX_FRAMES_IN_FLIGHT,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_shards_per_frame: DEFAULT_MAX_SHARDS_PER_FRAME,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            skip_ahead: true,
            first_frame_index: None,
        }
    }
}

/// An unusable [`ReassemblyConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig(pub String);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid reassembly config: {}", self.0)
    }
}

impl std::error::Error for InvalidConfig {}

/// A reassembled access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedFrame {
    /// Its frame index.
    pub frame_index: u32,
    /// Presentation timestamp from the sender.
    pub pts_ns: u64,
    /// The sender's user flags.
    pub user_flags: u32,
    /// Exactly `frame_bytes` bytes. Give the Vec back via
    /// [`Reassembler::recycle`] when done.
    pub data: Vec<u8>,
    /// Whether FEC rebuilt any shard of it.
    pub fec_recovered: bool,
    /// Frames given up between the previously delivered frame and this one
    /// (non-zero means the reference chain is broken).
    pub lost_before: u32,
}

/// What happened to one pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored (and possibly completed its block or frame).
    Accepted,
    /// Its block or frame was already complete (typically surplus parity).
    Unneeded,
    /// The same shard was already stored.
    Duplicate,
    /// Its frame was already delivered or given up, or is too old to track.
    Late,
    /// A bandwidth probe; not frame data.
    Probe,
    /// The header failed validation.
    Malformed(PacketError),
    /// The header is valid but contradicts earlier packets of its frame.
    Inconsistent,
    /// Accepting it would exceed a memory or size limit.
    OverLimit,
}

/// Counters; every pushed packet increments exactly one `packets_*` field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Packets stored.
    pub packets_accepted: u64,
    /// Packets for already complete blocks/frames (surplus parity).
    pub packets_unneeded: u64,
    /// Packets whose shard was already stored.
    pub packets_dropped_duplicate: u64,
    /// Packets for frames already delivered, given up, or too old.
    pub packets_dropped_late: u64,
    /// Packets with invalid or inconsistent headers.
    pub packets_dropped_malformed: u64,
    /// Packets refused by a size or memory limit.
    pub packets_dropped_limits: u64,
    /// Probe packets.
    pub packets_probe: u64,
    /// Frames delivered.
    pub frames_complete: u64,
    /// Delivered frames that needed FEC.
    pub frames_recovered: u64,
    /// Frames given up (including frames of which nothing arrived).
    pub frames_lost: u64,
    /// Delivered frames dropped because the caller did not drain them.
    pub frames_dropped_undrained: u64,
    /// Data shards rebuilt by FEC.
    pub shards_recovered: u64,
    /// Blocks whose reconstruction failed (their frame is given up).
    pub fec_failures: u64,
}

impl ReassemblyStats {
    /// Sum of all per-packet counters (= packets pushed).
    pub fn packets_total(&self) -> u64 {
        self.packets_accepted
            + self.packets_unneeded
            + self.packets_dropped_duplicate
            + self.packets_dropped_late
            + self.packets_dropped_malformed
            + self.packets_dropped_limits
            + self.packets_probe
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Empty,
    Active,
    /// Delivered (`emitted`) or given up; kept to classify stragglers.
    Retired {
        emitted: bool,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct BlockState {
    /// m, once any packet of the block was seen.
    recovery_shards: Option<usize>,
    data_received: usize,
    parity_received: usize,
    /// First slot of this block's parity in the frame's parity area.
    parity_offset: Option<usize>,
    complete: bool,
}

/// One frame's reassembly state; a ring slot reused across frames.
#[derive(Debug)]
struct FrameSlot {
    state: SlotState,
    frame_index: u32,
    first_seen_ns: u64,
    pts_ns: u64,
    user_flags: u32,
    fec_scheme: FecScheme,
    layout: FrameLayout,
    blocks: Vec<BlockState>,
    blocks_complete: usize,
    complete: bool,
    /// Reconstruction failed: the frame can never be delivered.
    failed: bool,
    recovered: bool,
    /// N · L bytes; shard g at g · L.
    data: Vec<u8>,
    data_present: Vec<bool>,
    /// Parity shards of all blocks that received parity, L bytes each.
    parity: Vec<u8>,
    parity_present: Vec<bool>,
    /// Bytes of `data` + `parity` charged to the reassembler's budget.
    charged_bytes: usize,
}

impl FrameSlot {
    fn new() -> Self {
        FrameSlot {
            state: SlotState::Empty,
            frame_index: 0,
            first_seen_ns: 0,
            pts_ns: 0,
            user_flags: 0,
            fec_scheme: FecScheme::None,
            layout: FrameLayout::new(0, 1, 1).expect("trivial layout"),
            blocks: Vec::new(),
            blocks_complete: 0,
            complete: false,
            failed: false,
            recovered: false,
            data: Vec::new(),
            data_present: Vec::new(),
            parity: Vec::new(),
            parity_present: Vec::new(),
            charged_bytes: 0,
        }
    }

    fn holds(&self, frame_index: u32) -> bool {
        self.state == SlotState::Active && self.frame_index == frame_index
    }

    /// Whether `header` agrees with what earlier packets said about the frame.
    fn consistent_with(&self, header: &PacketHeader) -> bool {
        header.pts_ns == self.pts_ns
            && header.user_flags == self.user_flags
            && header.fec_scheme == self.fec_scheme
            && header.layout() == Some(self.layout)
    }
}

/// Takes a buffer from the spare pool (or a fresh empty one).
fn take_spare(spare: &mut Vec<Vec<u8>>) -> Vec<u8> {
    spare.pop().unwrap_or_default()
}

/// Returns a buffer to the spare pool if there is room.
fn give_spare(spare: &mut Vec<Vec<u8>>, mut buffer: Vec<u8>) {
    if buffer.capacity() > 0 && spare.len() < SPARE_BUFFERS {
        buffer.clear();
        spare.push(buffer);
    }
}

/// Frees a bookkeeping vector that grew beyond what a normal frame needs.
fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() > RETAINED_METADATA_ENTRIES {
        *v = Vec::new();
    }
}

/// Frame reassembler (see the module docs).
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    /// Ring of `max_frames_in_flight` slots, indexed by `frame_index % len`.
    slots: Vec<FrameSlot>,
    started: bool,
    /// Whether any frame was delivered or given up yet (before that, an
    /// older frame may still lower `next_deliver`).
    resolved_any: bool,
    /// Oldest frame not yet delivered or given up.
    next_deliver: u32,
    /// Newest frame seen.
    highest: u32,
    /// Complete frames waiting behind an incomplete older one.
    complete_pending: usize,
    buffered_bytes: usize,
    lost_since_delivery: u32,
    ready: VecDeque<CompletedFrame>,
    spare: Vec<Vec<u8>>,
    present_scratch: Vec<bool>,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler with `config`.
    pub fn new(config: ReassemblyConfig) -> Result<Self, InvalidConfig> {
        if config.max_frames_in_flight == 0 || config.max_frames_in_flight > 1 << 20 {
            return Err(InvalidConfig(format!(
                "max_frames_in_flight {} not in 1..=2^20",
                config.max_frames_in_flight
            )));
        }
        if config.max_shards_per_frame == 0 {
            return Err(InvalidConfig("max_shards_per_frame is 0".into()));
        }
        let first = config.first_frame_index;
        Ok(Reassembler {
            slots: (0..config.max_frames_in_flight)
                .map(|_| FrameSlot::new())
                .collect(),
            config,
            // A known first frame starts the stream with nothing tracked
            // yet (highest one below next_deliver) and nothing older
            // acceptable.
            started: first.is_some(),
            resolved_any: first.is_some(),
            next_deliver: first.unwrap_or(0),
            highest: first.unwrap_or(0).wrapping_sub(1),
            complete_pending: 0,
            buffered_bytes: 0,
            lost_since_delivery: 0,
            ready: VecDeque::new(),
            spare: Vec::new(),
            present_scratch: Vec::new(),
            stats: ReassemblyStats::default(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ReassemblyConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Bytes currently held in frame buffers (in flight + undrained).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Frames currently being assembled.
    pub fn frames_in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Active)
            .count()
    }

    /// Feeds one opened packet (`header ‖ shard`) received at `now_ns`.
    pub fn push(
        &mut self,
        now_ns: u64,
        packet: &[u8],
        codes: &mut dyn CodeProvider,
    ) -> PushOutcome {
        let outcome = match PacketHeader::parse(packet) {
            Err(e) => PushOutcome::Malformed(e),
            Ok(h) if h.flags & flags::PROBE != 0 => PushOutcome::Probe,
            Ok(h) => {
                // Expire first, so a packet for a frame that just timed out
                // is late rather than reviving it.
                self.resolve(now_ns);
                self.accept(now_ns, &h, &packet[HEADER_LEN..], codes)
            }
        };
        let counter = match outcome {
            PushOutcome::Accepted => &mut self.stats.packets_accepted,
            PushOutcome::Unneeded => &mut self.stats.packets_unneeded,
            PushOutcome::Duplicate => &mut self.stats.packets_dropped_duplicate,
            PushOutcome::Late => &mut self.stats.packets_dropped_late,
            PushOutcome::Probe => &mut self.stats.packets_probe,
            PushOutcome::Malformed(_) | PushOutcome::Inconsistent => {
                &mut self.stats.packets_dropped_malformed
            }
            PushOutcome::OverLimit => &mut self.stats.packets_dropped_limits,
        };
        *counter += 1;
        self.resolve(now_ns);
        outcome
    }

    /// Gives up frames whose loss window expired at `now_ns` and delivers
    /// what that unblocks. Call periodically (e.g. every 5 ms) so losses are
    /// reported even when no packets arrive.
    pub fn poll(&mut self, now_ns: u64) {
        self.resolve(now_ns);
    }

    /// The next delivered frame, in frame order.
    pub fn pop_frame(&mut self) -> Option<CompletedFrame> {
        let frame = self.ready.pop_front()?;
        self.buffered_bytes -= frame.data.len();
        Some(frame)
    }

    /// Returns a frame buffer for reuse (keeps at most a few).
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        give_spare(&mut self.spare, buffer);
    }

    fn slot_index(&self, frame_index: u32) -> usize {
        frame_index as usize % self.slots.len()
    }

    fn window(&self) -> u32 {
        self.slots.len() as u32
    }

    fn accept(
        &mut self,
        now_ns: u64,
        header: &PacketHeader,
        shard: &[u8],
        codes: &mut dyn CodeProvider,
    ) -> PushOutcome {
        let frame = header.frame_index;
        if !self.started {
            self.started = true;
            self.next_deliver = frame;
            self.highest = frame;
        }
        if frame.wrapping_sub(self.next_deliver) >= HALF_INDEX_SPACE {
            // Older than the delivery point. Before anything was resolved
            // this is start-up reordering, which we can still absorb.
            let span = self.highest.wrapping_sub(frame);
            if self.resolved_any || span >= self.window() {
                return self.late_outcome(header);
            }
            self.next_deliver = frame;
        }
        if frame.wrapping_sub(self.next_deliver) >= self.window() {
            self.make_room_for(frame);
        }
        if frame.wrapping_sub(self.highest) < HALF_INDEX_SPACE {
            self.highest = frame;
        }
        let index = self.slot_index(frame);
        if !self.slots[index].holds(frame) {
            if let Err(outcome) = self.start_frame(index, now_ns, header) {
                return outcome;
            }
        }
        self.add_shard(index, header, shard, codes)
    }

    /// Classifies a packet for a frame before `next_deliver`.
    fn late_outcome(&self, header: &PacketHeader) -> PushOutcome {
        let slot = &self.slots[self.slot_index(header.frame_index)];
        let emitted = slot.frame_index == header.frame_index
            && slot.state == SlotState::Retired { emitted: true };
        if emitted && !header.is_data() {
            PushOutcome::Unneeded
        } else {
            PushOutcome::Late
        }
    }

    /// Resolves the oldest frames until `frame` fits in the ring.
    fn make_room_for(&mut self, frame: u32) {
        let window = self.window();
        while frame.wrapping_sub(self.next_deliver) >= window {
            if self.highest.wrapping_sub(self.next_deliver) >= HALF_INDEX_SPACE {
                // Nothing tracked any more: the rest is a gap of frames of
                // which nothing arrived; count them without iterating.
                let new_start = frame.wrapping_sub(window - 1);
                let gap = new_start.wrapping_sub(self.next_deliver);
                self.stats.frames_lost += u64::from(gap);
                self.lost_since_delivery = self.lost_since_delivery.saturating_add(gap);
                self.next_deliver = new_start;
                self.resolved_any = true;
                return;
            }
            self.resolve_front();
        }
    }

    /// Delivers or gives up the frame at `next_deliver` unconditionally.
    fn resolve_front(&mut self) {
        let index = self.slot_index(self.next_deliver);
        if self.slots[index].holds(self.next_deliver) && self.slots[index].complete {
            self.deliver_front(index);
        } else {
            self.give_up_front(index);
        }
    }

    /// Delivers and gives up frames in order as far as `now_ns` allows.
    fn resolve(&mut self, now_ns: u64) {
        while self.started && self.highest.wrapping_sub(self.next_deliver) < HALF_INDEX_SPACE {
            let index = self.slot_index(self.next_deliver);
            let newer_complete = self.config.skip_ahead && self.complete_pending > 0;
            let slot = &self.slots[index];
            if slot.holds(self.next_deliver) {
                if slot.complete {
                    self.deliver_front(index);
                } else if slot.failed
                    || newer_complete
                    || now_ns.saturating_sub(slot.first_seen_ns) >= self.config.loss_window_ns
                {
                    self.give_up_front(index);
                } else {
                    break;
                }
            } else if newer_complete
                || now_ns.saturating_sub(self.oldest_newer_first_seen())
                    >= self.config.loss_window_ns
            {
                // Nothing of this frame arrived: time it from the first
                // packet of any newer frame.
                self.give_up_front(index);
            } else {
                break;
            }
        }
    }

    /// Earliest first-packet time among active frames after `next_deliver`.
    fn oldest_newer_first_seen(&self) -> u64 {
        self.slots
            .iter()
            .filter(|s| {
                s.state == SlotState::Active
                    && s.frame_index.wrapping_sub(self.next_deliver) < HALF_INDEX_SPACE
            })
            .map(|s| s.first_seen_ns)
            .min()
            .unwrap_or(u64::MAX)
    }

    fn deliver_front(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        let mut data = std::mem::take(&mut slot.data);
        data.truncate(slot.layout.frame_bytes);
        let frame = CompletedFrame {
            frame_index: slot.frame_index,
            pts_ns: slot.pts_ns,
            user_flags: slot.user_flags,
            data,
            fec_recovered: slot.recovered,
            lost_before: self.lost_since_delivery,
        };
        self.complete_pending -= 1;
        self.release(index, true);
        self.stats.frames_complete += 1;
        self.stats.frames_recovered += u64::from(frame.fec_recovered);
        self.lost_since_delivery = 0;
        self.buffered_bytes += frame.data.len();
        if self.ready.len() >= MAX_READY_FRAMES {
            if let Some(dropped) = self.ready.pop_front() {
                self.buffered_bytes -= dropped.data.len();
                self.stats.frames_dropped_undrained += 1;
                give_spare(&mut self.spare, dropped.data);
            }
        }
        self.ready.push_back(frame);
        self.advance_front();
    }

    fn give_up_front(&mut self, index: usize) {
        if self.slots[index].holds(self.next_deliver) {
            self.release(index, false);
        } else {
            // Nothing of it ever arrived; remember it for straggler
            // classification. (No other active frame can map here: the
            // ring spans less than one lap from next_deliver.)
            let slot = &mut self.slots[index];
            slot.state = SlotState::Retired { emitted: false };
            slot.frame_index = self.next_deliver;
        }
        self.stats.frames_lost += 1;
        self.lost_since_delivery = self.lost_since_delivery.saturating_add(1);
        self.advance_front();
    }

    fn advance_front(&mut self) {
        self.next_deliver = self.next_deliver.wrapping_add(1);
        self.resolved_any = true;
    }

    /// Retires an active slot and returns its buffers and budget.
    fn release(&mut self, index: usize, emitted: bool) {
        let slot = &mut self.slots[index];
        slot.state = SlotState::Retired { emitted };
        self.buffered_bytes -= slot.charged_bytes;
        slot.charged_bytes = 0;
        give_spare(&mut self.spare, std::mem::take(&mut slot.data));
        give_spare(&mut self.spare, std::mem::take(&mut slot.parity));
        trim(&mut slot.blocks);
        trim(&mut slot.data_present);
        trim(&mut slot.parity_present);
    }

    /// Initialises ring slot `index` for the frame of `header`.
    fn start_frame(
        &mut self,
        index: usize,
        now_ns: u64,
        header: &PacketHeader,
    ) -> Result<(), PushOutcome> {
        let layout = header.layout().ok_or(PushOutcome::Inconsistent)?;
        let data_bytes = layout.data_area_bytes();
        if layout.frame_bytes > self.config.max_frame_bytes
            || layout.data_shards > self.config.max_shards_per_frame
            || self.buffered_bytes + data_bytes > self.config.max_buffered_bytes
        {
            return Err(PushOutcome::OverLimit);
        }
        let slot = &mut self.slots[index];
        debug_assert_ne!(slot.state, SlotState::Active, "ring slot still in use");
        slot.state = SlotState::Active;
        slot.frame_index = header.frame_index;
        slot.first_seen_ns = now_ns;
        slot.pts_ns = header.pts_ns;
        slot.user_flags = header.user_flags;
        slot.fec_scheme = header.fec_scheme;
        slot.layout = layout;
        slot.blocks.clear();
        slot.blocks
            .resize(layout.block_count, BlockState::default());
        slot.blocks_complete = 0;
        slot.complete = false;
        slot.failed = false;
        slot.recovered = false;
        slot.data = take_spare(&mut self.spare);
        // Zero-filling is not needed for correctness (every data byte is
        // written before delivery) but keeps the code free of `unsafe`.
        slot.data.resize(data_bytes, 0);
        slot.data_present.clear();
        slot.data_present.resize(layout.data_shards, false);
        slot.parity.clear();
        slot.parity_present.clear();
        slot.charged_bytes = data_bytes;
        self.buffered_bytes += data_bytes;
        Ok(())
    }

    /// Stores a shard of the active frame in slot `index`.
    fn add_shard(
        &mut self,
        index: usize,
        header: &PacketHeader,
        shard: &[u8],
        codes: &mut dyn CodeProvider,
    ) -> PushOutcome {
        let slot = &mut self.slots[index];
        if !slot.consistent_with(header) {
            return PushOutcome::Inconsistent;
        }
        let block_index = usize::from(header.block_index);
        let (first, k) = slot.layout.block(block_index);
        let m = usize::from(header.recovery_shards);
        let block = &mut slot.blocks[block_index];
        match block.recovery_shards {
            Some(known) if known != m => return PushOutcome::Inconsistent,
            _ => block.recovery_shards = Some(m),
        }
        if block.complete || slot.failed {
            return PushOutcome::Unneeded;
        }
        let shard_bytes = slot.layout.shard_bytes;
        let shard_index = usize::from(header.shard_index);
        if shard_index < k {
            let g = first + shard_index;
            if slot.data_present[g] {
                return PushOutcome::Duplicate;
            }
            slot.data[g * shard_bytes..(g + 1) * shard_bytes].copy_from_slice(shard);
            slot.data_present[g] = true;
            block.data_received += 1;
        } else {
            let offset = match block.parity_offset {
                Some(offset) => offset,
                None => {
                    // First parity of this block: reserve room for all m.
                    let bytes = m * shard_bytes;
                    if slot.layout.data_shards + slot.parity_present.len() + m
                        > self.config.max_shards_per_frame
                        || self.buffered_bytes + bytes > self.config.max_buffered_bytes
                    {
                        return PushOutcome::OverLimit;
                    }
                    let offset = slot.parity_present.len();
                    if slot.parity.capacity() == 0 {
                        slot.parity = take_spare(&mut self.spare);
                    }
                    slot.parity.resize((offset + m) * shard_bytes, 0);
                    slot.parity_present.resize(offset + m, false);
                    slot.charged_bytes += bytes;
                    self.buffered_bytes += bytes;
                    block.parity_offset = Some(offset);
                    offset
                }
            };
            let p = offset + shard_index - k;
            if slot.parity_present[p] {
                return PushOutcome::Duplicate;
            }
            slot.parity[p * shard_bytes..(p + 1) * shard_bytes].copy_from_slice(shard);
            slot.parity_present[p] = true;
            block.parity_received += 1;
        }

        if block.data_received == k {
            self.complete_block(index, block_index);
        } else if block.data_received + block.parity_received >= k {
            self.recover_block(index, block_index, codes);
        }
        PushOutcome::Accepted
    }

    fn complete_block(&mut self, index: usize, block_index: usize) {
        let slot = &mut self.slots[index];
        slot.blocks[block_index].complete = true;
        slot.blocks_complete += 1;
        if slot.blocks_complete == slot.layout.block_count {
            slot.complete = true;
            self.complete_pending += 1;
        }
    }

    /// Rebuilds the missing data shards of a block that has ≥ k shards.
    fn recover_block(&mut self, index: usize, block_index: usize, codes: &mut dyn CodeProvider) {
        let slot = &mut self.slots[index];
        let block = slot.blocks[block_index];
        let (first, k) = slot.layout.block(block_index);
        let m = block.recovery_shards.unwrap_or(0);
        let offset = block.parity_offset.unwrap_or(0);
        let shard_bytes = slot.layout.shard_bytes;

        self.present_scratch.clear();
        self.present_scratch
            .extend_from_slice(&slot.data_present[first..first + k]);
        self.present_scratch
            .extend_from_slice(&slot.parity_present[offset..offset + m]);
        let data = &mut slot.data[first * shard_bytes..(first + k) * shard_bytes];
        let parity = &mut slot.parity[offset * shard_bytes..(offset + m) * shard_bytes];
        let mut shards: Vec<&mut [u8]> = data
            .chunks_exact_mut(shard_bytes)
            .chain(parity.chunks_exact_mut(shard_bytes))
            .collect();
        let rebuilt = codes
            .code(slot.fec_scheme, k, m)
            .and_then(|code: &mut dyn ErasureCode| {
                code.reconstruct(&mut shards, &self.present_scratch)
            });
        match rebuilt {
            Ok(()) => {
                self.stats.shards_recovered += (k - block.data_received) as u64;
                slot.data_present[first..first + k].fill(true);
                slot.blocks[block_index].data_received = k;
                slot.recovered = true;
                self.complete_block(index, block_index);
            }
            Err(_) => {
                self.stats.fec_failures += 1;
                slot.failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::test_codes::TestCodes;
    use crate::fec::FecError;
    use crate::packet::packetize::{FrameInput, Packetizer, PacketizerConfig};
    use crate::packet::pf1::tests::sample_header;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    /// Plaintext packets of one frame, in wire order.
    fn packets(p: &mut Packetizer, codes: &mut TestCodes, data: &[u8], index: u32) -> Vec<Vec<u8>> {
        let frame = FrameInput {
            data,
            frame_index: index,
            pts_ns: u64::from(index) * 16 * MS,
            user_flags: index ^ 0xabc,
        };
        let batch = p.packetize(&frame, codes).unwrap();
        (0..batch.len())
            .map(|i| batch.plaintext(i).to_vec())
            .collect()
    }

    fn payload(len: usize, seed: u32) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) as u8)
            .collect()
    }

    fn setup(skip_ahead: bool) -> (Packetizer, Reassembler, TestCodes) {
        let mut config = PacketizerConfig::new(FecScheme::Gf8, 25);
        config.max_shard_bytes = 1000;
        let reassembler = Reassembler::new(ReassemblyConfig {
            skip_ahead,
            ..ReassemblyConfig::default()
        })
        .unwrap();
        (
            Packetizer::new(config).unwrap(),
            reassembler,
            TestCodes::default(),
        )
    }

    fn drain(r: &mut Reassembler) -> Vec<CompletedFrame> {
        std::iter::from_fn(|| r.pop_frame()).collect()
    }

    #[test]
    fn in_order_frames_are_delivered_exactly_without_fec() {
        let (mut p, mut r, mut codes) = setup(true);
        for index in 0..5u32 {
            let data = payload(7_500 + index as usize, index);
            let pkts = packets(&mut p, &mut codes, &data, index);
            for (i, pkt) in pkts.iter().enumerate() {
                let outcome = r.push(index as u64 * 16 * MS, pkt, &mut codes);
                // 8 data shards complete the frame; the 2 parity are surplus.
                let expected = if i < 8 {
                    PushOutcome::Accepted
                } else {
                    PushOutcome::Unneeded
                };
                assert_eq!(outcome, expected, "frame {index} packet {i}");
            }
            let frames = drain(&mut r);
            assert_eq!(frames.len(), 1);
            let f = &frames[0];
            assert_eq!(
                (f.frame_index, f.pts_ns, f.user_flags),
                (index, index as u64 * 16 * MS, index ^ 0xabc)
            );
            assert_eq!(f.data, data);
            assert!(!f.fec_recovered);
            assert_eq!(f.lost_before, 0);
        }
        let s = r.stats();
        assert_eq!(
            (s.frames_complete, s.frames_recovered, s.frames_lost),
            (5, 0, 0)
        );
        assert_eq!((s.packets_accepted, s.packets_unneeded), (40, 10));
        assert_eq!(codes.lookups, 5, "only the packetizer used FEC");
        assert_eq!(r.buffered_bytes(), 0);
        assert_eq!(r.frames_in_flight(), 0);
    }

    #[test]
    fn loss_up_to_parity_is_recovered() {
        let (mut p, mut r, mut codes) = setup(true);
        let data = payload(7_500, 1);
        let pkts = packets(&mut p, &mut codes, &data, 0);
        assert_eq!(pkts.len(), 10); // k = 8, m = 2
        for (i, pkt) in pkts.iter().enumerate() {
            if i != 0 && i != 5 {
                r.push(0, pkt, &mut codes);
            }
        }
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data, data);
        assert!(frames[0].fec_recovered);
        let s = r.stats();
        assert_eq!((s.frames_recovered, s.shards_recovered), (1, 2));
        // The original of a recovered shard arriving late is not needed.
        assert_eq!(r.push(1, &pkts[0], &mut codes), PushOutcome::Late);
    }

    #[test]
    fn loss_beyond_parity_is_given_up_after_the_window_then_later_frames_flow() {
        let (mut p, mut r, mut codes) = setup(false);
        let frame0 = payload(7_500, 0);
        let frame1 = payload(3_000, 1);
        for (i, pkt) in packets(&mut p, &mut codes, &frame0, 0).iter().enumerate() {
            if i >= 3 {
                r.push(0, pkt, &mut codes); // 3 lost > m = 2
            }
        }
        for pkt in packets(&mut p, &mut codes, &frame1, 1) {
            r.push(10 * MS, &pkt, &mut codes);
        }
        // Frame 1 is complete but waits for frame 0 (skip_ahead off).
        assert!(drain(&mut r).is_empty());
        r.poll(DEFAULT_LOSS_WINDOW_NS - 1);
        assert!(drain(&mut r).is_empty());
        assert_eq!(r.stats().frames_lost, 0);
        r.poll(DEFAULT_LOSS_WINDOW_NS);
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].frame_index, 1);
        assert_eq!(frames[0].data, frame1);
        assert_eq!(frames[0].lost_before, 1);
        assert_eq!(r.stats().frames_lost, 1);
        assert_eq!(r.buffered_bytes(), 0);
        // Stragglers of the lost frame are late.
        let late = packets(&mut p, &mut codes, &frame0, 0);
        assert_eq!(r.push(200 * MS, &late[0], &mut codes), PushOutcome::Late);
        // A frame that is left incomplete with nothing after it also expires.
        let frame2 = payload(2_000, 2);
        let pkts = packets(&mut p, &mut codes, &frame2, 2);
        r.push(300 * MS, &pkts[0], &mut codes);
        r.poll(300 * MS + DEFAULT_LOSS_WINDOW_NS);
        assert_eq!(r.stats().frames_lost, 2);
        assert_eq!(r.frames_in_flight(), 0);
    }

    #[test]
    fn skip_ahead_gives_up_older_frame_when_newer_completes() {
        let (mut p, mut r, mut codes) = setup(true);
        let frame0 = payload(7_500, 0);
        let frame1 = payload(3_000, 1);
        for pkt in packets(&mut p, &mut codes, &frame0, 0).iter().skip(3) {
            r.push(0, pkt, &mut codes);
        }
        for pkt in packets(&mut p, &mut codes, &frame1, 1) {
            r.push(MS, &pkt, &mut codes);
        }
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].frame_index, frames[0].lost_before), (1, 1));
        assert_eq!(r.stats().frames_lost, 1);
    }

    #[test]
    fn entirely_missing_frame_is_counted_lost() {
        for skip_ahead in [false, true] {
            let (mut p, mut r, mut codes) = setup(skip_ahead);
            for index in [0u32, 2] {
                let data = payload(1_500, index);
                for pkt in packets(&mut p, &mut codes, &data, index) {
                    r.push(u64::from(index) * 16 * MS, &pkt, &mut codes);
                }
            }
            if !skip_ahead {
                // Frame 1 is timed from frame 2's first packet.
                r.poll(32 * MS + DEFAULT_LOSS_WINDOW_NS);
            }
            let frames = drain(&mut r);
            let got: Vec<(u32, u32)> = frames
                .iter()
                .map(|f| (f.frame_index, f.lost_before))
                .collect();
            assert_eq!(got, [(0, 0), (2, 1)], "skip_ahead {skip_ahead}");
            assert_eq!(r.stats().frames_lost, 1);
        }
    }

    #[test]
    fn known_first_frame_makes_a_vanished_first_frame_visible() {
        for (first, lost) in [(None, 0u64), (Some(0), 1)] {
            let (mut p, _, mut codes) = setup(true);
            let mut r = Reassembler::new(ReassemblyConfig {
                first_frame_index: first,
                ..ReassemblyConfig::default()
            })
            .unwrap();
            // Frame 0 (the keyframe) vanishes entirely; frame 1 arrives.
            let _ = packets(&mut p, &mut codes, &payload(9_000, 0), 0);
            for pkt in packets(&mut p, &mut codes, &payload(900, 1), 1) {
                r.push(0, &pkt, &mut codes);
            }
            let frames = drain(&mut r);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].lost_before as u64, lost);
            assert_eq!(r.stats().frames_lost, lost);
            // With a known start, older frames are late.
            if first.is_some() {
                let old = packets(&mut p, &mut codes, &payload(10, 0), u32::MAX);
                assert_eq!(r.push(0, &old[0], &mut codes), PushOutcome::Late);
            }
        }
    }

    #[test]
    fn duplicates_late_and_surplus_are_classified() {
        let (mut p, mut r, mut codes) = setup(true);
        let data = payload(7_500, 3);
        let pkts = packets(&mut p, &mut codes, &data, 0);
        assert_eq!(r.push(0, &pkts[8], &mut codes), PushOutcome::Accepted); // parity first
        assert_eq!(r.push(0, &pkts[8], &mut codes), PushOutcome::Duplicate);
        assert_eq!(r.push(0, &pkts[1], &mut codes), PushOutcome::Accepted);
        assert_eq!(r.push(0, &pkts[1], &mut codes), PushOutcome::Duplicate);
        for pkt in &pkts[2..8] {
            r.push(0, pkt, &mut codes);
        }
        // 7 data + 1 parity = k: recovered; frame delivered.
        assert_eq!(drain(&mut r).len(), 1);
        assert_eq!(r.push(0, &pkts[9], &mut codes), PushOutcome::Unneeded);
        assert_eq!(r.push(0, &pkts[0], &mut codes), PushOutcome::Late);
        let s = r.stats();
        assert_eq!(s.packets_dropped_duplicate, 2);
        assert_eq!(s.packets_total(), 12);
    }

    #[test]
    fn inconsistent_packets_are_malformed() {
        let (mut p, mut r, mut codes) = setup(true);
        let pkts = packets(&mut p, &mut codes, &payload(7_500, 0), 0);
        r.push(0, &pkts[0], &mut codes);
        // Same frame index, different length: a different "frame".
        let other = packets(&mut p, &mut codes, &payload(4_000, 0), 0);
        assert_eq!(r.push(0, &other[1], &mut codes), PushOutcome::Inconsistent);
        let mut changed_pts = pkts[1].clone();
        changed_pts[0] ^= 1;
        assert_eq!(
            r.push(0, &changed_pts, &mut codes),
            PushOutcome::Inconsistent
        );
        assert_eq!(r.stats().packets_dropped_malformed, 2);
        assert!(matches!(
            r.push(0, &pkts[1][..30], &mut codes),
            PushOutcome::Malformed(PacketError::TooShort { len: 30 })
        ));
    }

    #[test]
    fn limits_refuse_oversized_frames_and_budget_overruns() {
        let mut codes = TestCodes::default();
        let mut p = Packetizer::new(PacketizerConfig::default()).unwrap();
        let mut r = Reassembler::new(ReassemblyConfig {
            max_frame_bytes: 10_000,
            max_buffered_bytes: 30_000,
            ..ReassemblyConfig::default()
        })
        .unwrap();
        let big = packets(&mut p, &mut codes, &payload(10_001, 0), 0);
        assert_eq!(r.push(0, &big[0], &mut codes), PushOutcome::OverLimit);
        // Three 10 kB data areas fit the 30 kB budget exactly; a fourth not.
        for index in 1..=2 {
            let pkts = packets(&mut p, &mut codes, &payload(10_000, index), index);
            assert_eq!(r.push(0, &pkts[0], &mut codes), PushOutcome::Accepted);
        }
        let third = packets(&mut p, &mut codes, &payload(10_000, 3), 3);
        assert_eq!(r.push(0, &third[0], &mut codes), PushOutcome::Accepted);
        let fourth = packets(&mut p, &mut codes, &payload(10_000, 4), 4);
        assert_eq!(r.push(0, &fourth[0], &mut codes), PushOutcome::OverLimit);
        assert!(r.buffered_bytes() <= 30_000);
        assert_eq!(r.stats().packets_dropped_limits, 2);
        // Once they expire the budget is free again.
        r.poll(DEFAULT_LOSS_WINDOW_NS);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn probes_are_counted_not_assembled() {
        let (_, mut r, mut codes) = setup(true);
        let mut h = sample_header();
        h.flags = flags::PROBE;
        let mut pkt = vec![0u8; HEADER_LEN + 1000];
        h.write_to((&mut pkt[..HEADER_LEN]).try_into().unwrap());
        assert_eq!(r.push(0, &pkt, &mut codes), PushOutcome::Probe);
        assert_eq!(r.frames_in_flight(), 0);
        assert_eq!(r.stats().packets_probe, 1);
    }

    #[test]
    fn frame_index_wraps_and_far_jumps_resolve_the_ring() {
        let (mut p, mut r, mut codes) = setup(true);
        let indices = [u32::MAX - 1, u32::MAX, 0, 1];
        for (n, &index) in indices.iter().enumerate() {
            for pkt in packets(&mut p, &mut codes, &payload(2_000, index), index) {
                r.push(n as u64 * MS, &pkt, &mut codes);
            }
        }
        let got: Vec<u32> = drain(&mut r).iter().map(|f| f.frame_index).collect();
        assert_eq!(got, indices);
        // Half-received frame 2, then a jump of 1000 frames: frame 2 and the
        // 997 frames never seen in between are lost, and the new frame flows.
        let pkts = packets(&mut p, &mut codes, &payload(2_000, 2), 2);
        r.push(10 * MS, &pkts[0], &mut codes);
        for pkt in packets(&mut p, &mut codes, &payload(500, 1000), 1000) {
            r.push(11 * MS, &pkt, &mut codes);
        }
        let frames = drain(&mut r);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].frame_index, frames[0].lost_before), (1000, 998));
        assert_eq!(r.stats().frames_lost, 998);
        // Far behind now: late.
        assert_eq!(r.push(12 * MS, &pkts[1], &mut codes), PushOutcome::Late);
    }

    #[test]
    fn startup_reordering_is_absorbed() {
        let (mut p, mut r, mut codes) = setup(false);
        let f0 = packets(&mut p, &mut codes, &payload(1_500, 0), 10);
        let f1 = packets(&mut p, &mut codes, &payload(1_500, 1), 11);
        r.push(0, &f1[0], &mut codes);
        for pkt in f0.iter().chain(&f1[1..]) {
            r.push(0, pkt, &mut codes);
        }
        let got: Vec<u32> = drain(&mut r).iter().map(|f| f.frame_index).collect();
        assert_eq!(got, [10, 11]);
    }

    struct BrokenCodes;
    impl CodeProvider for BrokenCodes {
        fn code(
            &mut self,
            _: FecScheme,
            _: usize,
            _: usize,
        ) -> Result<&mut dyn ErasureCode, FecError> {
            Err(FecError::InvalidParameters("unsupported".into()))
        }
    }

    #[test]
    fn fec_failure_gives_the_frame_up_without_panicking() {
        let (mut p, mut r, mut codes) = setup(false);
        let pkts = packets(&mut p, &mut codes, &payload(7_500, 0), 0);
        for pkt in &pkts[1..] {
            r.push(0, pkt, &mut BrokenCodes);
        }
        assert_eq!(r.stats().fec_failures, 1);
        assert_eq!(
            r.stats().frames_lost,
            1,
            "failed frames are given up at once"
        );
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn recycled_buffers_are_reused() {
        let (mut p, mut r, mut codes) = setup(true);
        let data = payload(50_000, 0);
        for pkt in packets(&mut p, &mut codes, &data, 0) {
            r.push(0, &pkt, &mut codes);
        }
        let frame = r.pop_frame().unwrap();
        let pointer = frame.data.as_ptr();
        r.recycle(frame.data);
        for pkt in packets(&mut p, &mut codes, &data, 1) {
            r.push(0, &pkt, &mut codes);
        }
        let frame = r.pop_frame().unwrap();
        assert_eq!(frame.data, data);
        assert_eq!(frame.data.as_ptr(), pointer);
    }

    #[test]
    fn undrained_frames_are_bounded() {
        let (mut p, mut r, mut codes) = setup(true);
        for index in 0..(MAX_READY_FRAMES as u32 + 10) {
            for pkt in packets(&mut p, &mut codes, &payload(10, index), index) {
                r.push(0, &pkt, &mut codes);
            }
        }
        assert_eq!(r.stats().frames_dropped_undrained, 10);
        assert_eq!(drain(&mut r).len(), MAX_READY_FRAMES);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn rejects_unusable_config() {
        let bad = |c: ReassemblyConfig| Reassembler::new(c).is_err();
        assert!(bad(ReassemblyConfig {
            max_frames_in_flight: 0,
            ..Default::default()
        }));
        assert!(bad(ReassemblyConfig {
            max_shards_per_frame: 0,
            ..Default::default()
        }));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn garbage_never_panics_and_every_packet_is_counted(
            seeds in proptest::collection::vec(
                (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..120), any::<u16>(), any::<u8>()),
                1..200,
            ),
            skip_ahead in any::<bool>(),
        ) {
            let (mut p, mut r, mut codes) = setup(skip_ahead);
            let valid: Vec<Vec<u8>> = (0..4u32)
                .flat_map(|i| packets(&mut p, &mut codes, &payload(2_500 * i as usize, i), i))
                .collect();
            for (n, (kind, bytes, pos, val)) in seeds.iter().enumerate() {
                let packet = match kind % 3 {
                    // Pure garbage.
                    0 => bytes.clone(),
                    // A valid packet with one byte changed (often still parses).
                    1 => {
                        let mut v = valid[n % valid.len()].clone();
                        let at = usize::from(*pos) % v.len();
                        v[at] = *val;
                        v
                    }
                    // A valid header over a garbage tail.
                    _ => {
                        let mut v = valid[n % valid.len()][..HEADER_LEN].to_vec();
                        v.extend_from_slice(bytes);
                        v
                    }
                };
                r.push(n as u64 * MS, &packet, &mut codes);
                if n % 7 == 0 {
                    r.poll(n as u64 * MS);
                }
                while let Some(f) = r.pop_frame() {
                    r.recycle(f.data);
                }
            }
            prop_assert_eq!(r.stats().packets_total(), seeds.len() as u64);
            prop_assert!(r.buffered_bytes() <= r.config().max_buffered_bytes);
        }
    }
}
