//! Snowflake-style IDs: a 64-bit integer made of a time field, a worker (machine) field and a
//! sequence field. Every generator fixes an epoch, a time unit and the width of each field;
//! the time field then runs out on a date the layout alone decides, and the worker field
//! bounds how many generators may ever be started (uid-generator takes a fresh worker ID at
//! every start, see `worker.rs`).
//!
//! The sign bit is never used, so a value with the top bit set (a negative BIGINT) is not a
//! snowflake under any layout.

use serde::Serialize;

use crate::time;

/// Which field sits where, from the most significant bits down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// time | worker | sequence (Twitter, uid-generator).
    TimeWorkerSeq,
    /// time | sequence | worker (Sonyflake).
    TimeSeqWorker,
}

/// A snowflake layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub name: String,
    /// The instant time field 0 stands for, in ms since the Unix epoch.
    pub epoch_ms: i64,
    pub time_bits: u32,
    pub worker_bits: u32,
    pub seq_bits: u32,
    /// Length of one tick of the time field, in ms.
    pub unit_ms: u64,
    pub order: Order,
}

/// The fields of one ID under a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Decoded {
    /// Ticks since the layout's epoch.
    pub ticks: u64,
    /// The instant, in ms since the Unix epoch.
    pub time_ms: i64,
    pub worker: u64,
    pub seq: u64,
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Why a `--snowflake` layout was not read; each message names the item to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("item {item} `{part}` is not key=value (expected epoch=…,time_bits=…,worker_bits=…,seq_bits=…[,unit=ms])")]
    NotKeyValue { item: usize, part: String },
    #[error("{key}=`{value}` is not a bit count from 0 to 63")]
    Bits { key: String, value: String },
    #[error("epoch=`{0}` is too large")]
    EpochTooLarge(String),
    /// The epoch is not a date or instant (the reason is the instant parser's).
    #[error("epoch: {0}")]
    Epoch(String),
    #[error("unit=`{0}`: expected ms, 10ms, s or another number of ms like 5ms")]
    Unit(String),
    #[error("order=`{0}`: expected time-worker-seq or time-seq-worker")]
    Order(String),
    #[error("unknown item `{0}` (expected epoch, time_bits, worker_bits, seq_bits, unit, order or name)")]
    UnknownItem(String),
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("time_bits must be at least 1")]
    NoTimeBits,
    #[error("time_bits + worker_bits + seq_bits = {0}; at most 63 fit beside the sign bit")]
    TooWide(u32),
    /// The time field must end before year 9999, or dates cannot be printed.
    #[error("the time field of this layout outlasts year 9999")]
    OutlastsYear9999,
}

impl Layout {
    /// Twitter's original: 41 bits of ms since 2010-11-04T01:42:54.657Z, 10 bits of worker
    /// (datacenter + worker), 12 bits of sequence.
    pub fn twitter() -> Layout {
        Layout {
            name: "twitter".into(),
            epoch_ms: 1_288_834_974_657,
            time_bits: 41,
            worker_bits: 10,
            seq_bits: 12,
            unit_ms: 1,
            order: Order::TimeWorkerSeq,
        }
    }

    /// Sonyflake: 39 bits of 10 ms units since 2014-09-01, then 8 bits of sequence, then
    /// 16 bits of machine ID.
    pub fn sonyflake() -> Layout {
        Layout {
            name: "sonyflake".into(),
            epoch_ms: 1_409_529_600_000,
            time_bits: 39,
            worker_bits: 16,
            seq_bits: 8,
            unit_ms: 10,
            order: Order::TimeSeqWorker,
        }
    }

    /// Baidu uid-generator's DefaultUidGenerator: 28 bits of seconds since 2016-05-20,
    /// 22 bits of worker ID (from the WORKER_NODE table), 13 bits of sequence.
    pub fn uid_generator() -> Layout {
        Layout {
            name: "uid-generator".into(),
            epoch_ms: 1_463_702_400_000,
            time_bits: 28,
            worker_bits: 22,
            seq_bits: 13,
            unit_ms: 1000,
            order: Order::TimeWorkerSeq,
        }
    }

    /// The layouts tried on every BIGINT key.
    pub fn known() -> Vec<Layout> {
        vec![
            Layout::twitter(),
            Layout::sonyflake(),
            Layout::uid_generator(),
        ]
    }

    /// Reads `--snowflake`: `epoch=DATE|MS,time_bits=N,worker_bits=N,seq_bits=N[,unit=ms|10ms|s|Nms]
    /// [,order=time-worker-seq|time-seq-worker][,name=NAME]`, or the name of a known layout.
    pub fn parse(spec: &str) -> Result<Layout, LayoutError> {
        let spec = spec.trim();
        if let Some(l) = Layout::known().into_iter().find(|l| l.name == spec) {
            return Ok(l);
        }
        let (mut epoch, mut tb, mut wb, mut sb) = (None, None, None, None);
        let mut unit_ms = 1u64;
        let mut order = Order::TimeWorkerSeq;
        let mut name = "custom".to_string();
        for (i, part) in spec.split(',').enumerate() {
            let part = part.trim();
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| LayoutError::NotKeyValue {
                    item: i + 1,
                    part: part.to_string(),
                })?;
            let (k, v) = (k.trim(), v.trim());
            let bits = |v: &str| -> Result<u32, LayoutError> {
                v.parse::<u32>()
                    .ok()
                    .filter(|b| *b <= 63)
                    .ok_or_else(|| LayoutError::Bits {
                        key: k.to_string(),
                        value: v.to_string(),
                    })
            };
            match k {
                "epoch" => {
                    epoch = Some(if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                        v.parse::<i64>()
                            .map_err(|_| LayoutError::EpochTooLarge(v.to_string()))?
                    } else {
                        time::parse_instant_ms(v).map_err(|e| LayoutError::Epoch(e.to_string()))?
                    })
                }
                "time_bits" => tb = Some(bits(v)?),
                "worker_bits" => wb = Some(bits(v)?),
                "seq_bits" => sb = Some(bits(v)?),
                "unit" => unit_ms = parse_unit(v)?,
                "order" => {
                    order = match v {
                        "time-worker-seq" => Order::TimeWorkerSeq,
                        "time-seq-worker" => Order::TimeSeqWorker,
                        _ => return Err(LayoutError::Order(v.to_string())),
                    }
                }
                "name" if !v.is_empty() => name = v.to_string(),
                _ => return Err(LayoutError::UnknownItem(k.to_string())),
            }
        }
        let missing = LayoutError::Missing;
        let layout = Layout {
            name,
            epoch_ms: epoch.ok_or_else(|| missing("epoch"))?,
            time_bits: tb.ok_or_else(|| missing("time_bits"))?,
            worker_bits: wb.ok_or_else(|| missing("worker_bits"))?,
            seq_bits: sb.ok_or_else(|| missing("seq_bits"))?,
            unit_ms,
            order,
        };
        if layout.time_bits == 0 {
            return Err(LayoutError::NoTimeBits);
        }
        let total = layout.time_bits + layout.worker_bits + layout.seq_bits;
        if total > 63 {
            return Err(LayoutError::TooWide(total));
        }
        // The time field must end before year 9999, or dates cannot be printed.
        if layout.exhausted_at_ms().is_none() {
            return Err(LayoutError::OutlastsYear9999);
        }
        Ok(layout)
    }

    /// Bits below the time field.
    fn low_bits(&self) -> u32 {
        self.worker_bits + self.seq_bits
    }

    /// The fields of `id`, or `None` when the value cannot come from this layout (negative,
    /// or bits above the layout's width set).
    pub fn decode(&self, id: i64) -> Option<Decoded> {
        if id < 0 {
            return None;
        }
        let id = id as u64;
        let width = self.time_bits + self.low_bits();
        if width < 64 && id >> width != 0 {
            return None;
        }
        let ticks = id >> self.low_bits();
        let (worker, seq) = match self.order {
            Order::TimeWorkerSeq => (
                (id >> self.seq_bits) & mask(self.worker_bits),
                id & mask(self.seq_bits),
            ),
            Order::TimeSeqWorker => (
                id & mask(self.worker_bits),
                (id >> self.worker_bits) & mask(self.seq_bits),
            ),
        };
        let time_ms = i64::try_from(ticks)
            .ok()?
            .checked_mul(i64::try_from(self.unit_ms).ok()?)?
            .checked_add(self.epoch_ms)?;
        Some(Decoded {
            ticks,
            time_ms,
            worker,
            seq,
        })
    }

    /// The ID of these fields, or `None` when a field does not fit its width.
    pub fn encode(&self, ticks: u64, worker: u64, seq: u64) -> Option<i64> {
        if ticks > mask(self.time_bits)
            || worker > mask(self.worker_bits)
            || seq > mask(self.seq_bits)
        {
            return None;
        }
        let low = match self.order {
            Order::TimeWorkerSeq => (worker << self.seq_bits) | seq,
            Order::TimeSeqWorker => (seq << self.worker_bits) | worker,
        };
        i64::try_from((ticks << self.low_bits()) | low).ok()
    }

    /// The first instant the time field cannot hold (ms since the Unix epoch): IDs stop (or
    /// wrap and collide) from then on.
    pub fn exhausted_at_ms(&self) -> Option<i64> {
        let ticks = i64::try_from(1u64.checked_shl(self.time_bits)?).ok()?;
        let ms = ticks
            .checked_mul(i64::try_from(self.unit_ms).ok()?)?
            .checked_add(self.epoch_ms)?;
        (ms < 253_402_300_800_000).then_some(ms)
    }

    /// Worker IDs the layout can tell apart.
    pub fn max_worker(&self) -> u64 {
        mask(self.worker_bits)
    }

    /// IDs one worker can make in one tick.
    pub fn ids_per_tick(&self) -> u64 {
        1u64 << self.seq_bits
    }

    /// A short description: `41/10/12 bits, ms since 2010-11-04`.
    pub fn describe(&self) -> String {
        let unit = match self.unit_ms {
            1 => "ms".to_string(),
            1000 => "s".to_string(),
            n => format!("{n} ms"),
        };
        let fields = match self.order {
            Order::TimeWorkerSeq => format!(
                "time {} | worker {} | sequence {} bits",
                self.time_bits, self.worker_bits, self.seq_bits
            ),
            Order::TimeSeqWorker => format!(
                "time {} | sequence {} | worker {} bits",
                self.time_bits, self.seq_bits, self.worker_bits
            ),
        };
        format!(
            "{} ({fields}, {unit} since {})",
            self.name,
            time::format_date(self.epoch_ms.div_euclid(1000))
        )
    }
}

fn parse_unit(v: &str) -> Result<u64, LayoutError> {
    let bad = || LayoutError::Unit(v.to_string());
    match v {
        "ms" => Ok(1),
        "s" => Ok(1000),
        _ => {
            let n = v.strip_suffix("ms").ok_or_else(bad)?;
            let n: u64 = n.parse().map_err(|_| bad())?;
            if n == 0 || n > 86_400_000 {
                return Err(bad());
            }
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exhaustion_dates_of_the_known_layouts() {
        // 2^28 s after 2016-05-20: late November 2024, as the field notes say.
        let u = Layout::uid_generator().exhausted_at_ms().unwrap();
        assert!(
            time::format_date(u / 1000).starts_with("2024-11-"),
            "{}",
            time::format_date(u / 1000)
        );
        // 2^41 ms ≈ 69.7 years after 2010-11-04.
        let t = Layout::twitter().exhausted_at_ms().unwrap();
        assert_eq!(time::format_date(t / 1000), "2080-07-10");
        // 2^39 × 10 ms ≈ 174 years after 2014-09-01.
        let s = Layout::sonyflake().exhausted_at_ms().unwrap();
        assert!(time::format_date(s / 1000).starts_with("2188-"));
    }

    #[test]
    fn parses_specs_and_rejects_bad_ones() {
        let l = Layout::parse("epoch=2016-05-20,time_bits=28,worker_bits=22,seq_bits=13,unit=s")
            .unwrap();
        assert_eq!(l.epoch_ms, Layout::uid_generator().epoch_ms);
        assert_eq!(
            (l.time_bits, l.worker_bits, l.seq_bits, l.unit_ms),
            (28, 22, 13, 1000)
        );
        assert_eq!(Layout::parse("twitter").unwrap(), Layout::twitter());
        for bad in [
            "",
            "epoch=2016-05-20",
            "epoch=2016-05-20,time_bits=40,worker_bits=20,seq_bits=10",
            "epoch=yesterday,time_bits=41,worker_bits=10,seq_bits=12",
            "epoch=0,time_bits=x,worker_bits=10,seq_bits=12",
            "epoch=0,time_bits=41,worker_bits=10,seq_bits=12,unit=0ms",
            "epoch=0,time_bits=41,worker_bits=10,seq_bits=12,colour=red",
            "epoch=0,time_bits=63,worker_bits=0,seq_bits=0,unit=s",
        ] {
            assert!(Layout::parse(bad).is_err(), "{bad}");
        }
    }

    fn any_layout() -> impl Strategy<Value = Layout> {
        prop_oneof![
            Just(Layout::twitter()),
            Just(Layout::sonyflake()),
            Just(Layout::uid_generator()),
            (
                1u32..=41,
                0u32..=10,
                0u32..=12,
                1u64..=1000,
                any::<bool>(),
                0i64..2_000_000_000_000
            )
                .prop_map(|(t, w, s, unit, o, epoch)| Layout {
                    name: "custom".into(),
                    epoch_ms: epoch,
                    time_bits: t,
                    worker_bits: w,
                    seq_bits: s,
                    unit_ms: unit,
                    order: if o {
                        Order::TimeWorkerSeq
                    } else {
                        Order::TimeSeqWorker
                    },
                })
                .prop_filter("ends before year 9999", |l| l.exhausted_at_ms().is_some()),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_the_fields_back(l in any_layout(), t in any::<u64>(), w in any::<u64>(), s in any::<u64>()) {
            let (t, w, s) = (t & mask(l.time_bits), w & mask(l.worker_bits), s & mask(l.seq_bits));
            let id = l.encode(t, w, s).unwrap();
            prop_assert!(id >= 0);
            let d = l.decode(id).unwrap();
            prop_assert_eq!((d.ticks, d.worker, d.seq), (t, w, s));
            prop_assert_eq!(d.time_ms, l.epoch_ms + (t as i64) * l.unit_ms as i64);
        }

        #[test]
        fn the_last_tick_ends_at_the_exhaustion_date(l in any_layout(), w in any::<u64>(), s in any::<u64>()) {
            let (w, s) = (w & mask(l.worker_bits), s & mask(l.seq_bits));
            let last = mask(l.time_bits);
            let id = l.encode(last, w, s).unwrap();
            let d = l.decode(id).unwrap();
            prop_assert_eq!(d.time_ms + l.unit_ms as i64, l.exhausted_at_ms().unwrap());
            // One tick later does not fit.
            prop_assert!(l.encode(last + 1, w, s).is_none());
        }

        #[test]
        fn decode_is_total(l in any_layout(), id in any::<i64>()) {
            if let Some(d) = l.decode(id) {
                prop_assert_eq!(l.encode(d.ticks, d.worker, d.seq), Some(id));
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Layout::parse(&s);
        }

        #[test]
        fn parse_reads_what_describe_means(t in 1u32..=35, w in 0u32..=10, s in 0u32..=12, unit in prop_oneof![Just("ms"), Just("s"), Just("10ms")]) {
            let spec = format!("epoch=2020-01-01,time_bits={t},worker_bits={w},seq_bits={s},unit={unit}");
            let l = Layout::parse(&spec).unwrap();
            prop_assert_eq!((l.time_bits, l.worker_bits, l.seq_bits), (t, w, s));
        }
    }
}
