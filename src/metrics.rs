//! Prometheus metrics without dependencies: counters, gauges and histograms on `std` atomics,
//! rendered in the text exposition format 0.0.4 for the admin listener.
//!
//! Hot paths only touch atomics. Incrementing a series you hold (`Arc<Counter>`) is one relaxed
//! atomic add: no allocation, no lock. Looking a labelled series up (`CounterVec::with`) hashes
//! the label values and takes a family's read lock; the write lock is taken only to create a label
//! set never seen before. Each labelled family holds at most a bounded number of label sets (1000
//! by default); past that, lookups land on one series whose label values are all `_overflow`, and
//! `consentgate_metrics_overflow_total{family="..."}` counts those lookups, so a flood of distinct
//! label values cannot grow memory without bound.
//!
//! Registration happens once at startup with constant names. An invalid or duplicate name is a
//! programming error: it fails a debug assertion, and in release builds it falls back safely (an
//! invalid name is sanitised; a duplicate gets a working metric that is not rendered).

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Latency buckets in seconds, from half a millisecond to ten seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How many label sets a labelled family holds unless told otherwise.
pub const DEFAULT_LABEL_SET_LIMIT: usize = 1000;

/// The label value of every label on a family's overflow series.
pub const OVERFLOW_LABEL_VALUE: &str = "_overflow";

/// The internal counter of lookups sent to an overflow series, labelled by `family`.
pub const OVERFLOW_METRIC: &str = "consentgate_metrics_overflow_total";

/// The `Content-Type` of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Plain metrics
// ---------------------------------------------------------------------------------------------

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter {
    value: AtomicU64,
}

impl Counter {
    pub const fn new() -> Self {
        Counter {
            value: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge {
    value: AtomicI64,
}

impl Gauge {
    pub const fn new() -> Self {
        Gauge {
            value: AtomicI64::new(0),
        }
    }

    #[inline]
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    #[inline]
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// Observations counted into fixed buckets (upper bounds in seconds, inclusive), plus their sum.
///
/// Each observation is one add on its own bucket and a compare-and-swap loop on the sum (an `f64`
/// kept as bits). The count is the sum of the buckets, so a rendered `le="+Inf"` bucket always
/// equals `_count`; `_sum` read during concurrent observations may be ahead or behind by the
/// observations in flight.
#[derive(Debug)]
pub struct Histogram {
    /// Finite, strictly increasing. `+Inf` is implicit.
    bounds: Arc<[f64]>,
    /// Non-cumulative: `buckets[i]` counts observations in `(bounds[i-1], bounds[i]]`; the last
    /// one, past every bound, is the `+Inf`-only bucket. `len == bounds.len() + 1`.
    buckets: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

impl Histogram {
    /// `buckets` should be finite and strictly increasing; a trailing `+Inf` is ignored (it is
    /// always there). Anything else fails a debug assertion and is sorted and deduplicated.
    pub fn new(buckets: &[f64]) -> Self {
        Histogram::with_bounds(normalize_buckets(buckets))
    }

    fn with_bounds(bounds: Arc<[f64]>) -> Self {
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds,
            buckets,
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records `v` (seconds). A non-finite value is dropped: it would poison `_sum` for good.
    #[inline]
    pub fn observe(&self, v: f64) {
        if !v.is_finite() {
            return;
        }
        let i = self.bounds.partition_point(|&b| b < v);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        // The closure always returns `Some`, so this never gives up.
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// The sum of the recorded observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits.load(Ordering::Relaxed))
    }

    /// The finite upper bounds, without the implicit `+Inf`.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Cumulative counts, one per finite bound and then `+Inf` (which is the count).
    pub fn cumulative_counts(&self) -> Vec<u64> {
        let mut total = 0u64;
        self.buckets
            .iter()
            .map(|b| {
                total = total.wrapping_add(b.load(Ordering::Relaxed));
                total
            })
            .collect()
    }
}

/// Finite, strictly increasing bounds; a trailing `+Inf` is dropped silently.
fn normalize_buckets(buckets: &[f64]) -> Arc<[f64]> {
    let explicit = match buckets.split_last() {
        Some((last, rest)) if *last == f64::INFINITY => rest,
        _ => buckets,
    };
    debug_assert!(
        explicit.iter().all(|b| b.is_finite()) && explicit.windows(2).all(|w| w[0] < w[1]),
        "histogram buckets must be finite and strictly increasing: {buckets:?}"
    );
    let mut bounds: Vec<f64> = explicit.iter().copied().filter(|b| b.is_finite()).collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    bounds.into()
}

// ---------------------------------------------------------------------------------------------
// Labelled families
// ---------------------------------------------------------------------------------------------

/// A series a labelled family can make more of.
trait Series: Send + Sync {
    /// A new, zeroed series shaped like `self` (same buckets).
    fn fresh(&self) -> Self;
}

impl Series for Counter {
    fn fresh(&self) -> Self {
        Counter::new()
    }
}

impl Series for Histogram {
    fn fresh(&self) -> Self {
        Histogram::with_bounds(Arc::clone(&self.bounds))
    }
}

/// Label values as a map key, so a map keyed by owned `String`s can be probed with `&[&str]`
/// without allocating: both sides hash and compare through `dyn LabelValues`.
trait LabelValues {
    fn count(&self) -> usize;
    fn value(&self, i: usize) -> &str;
}

impl Hash for dyn LabelValues + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.count());
        for i in 0..self.count() {
            self.value(i).hash(state);
        }
    }
}

impl PartialEq for dyn LabelValues + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.count() == other.count() && (0..self.count()).all(|i| self.value(i) == other.value(i))
    }
}

impl Eq for dyn LabelValues + '_ {}

/// Owned label values: the key stored in a family's map. An `Arc` so rendering can snapshot the
/// map cheaply and let go of the lock before formatting.
#[derive(Debug, Clone)]
struct LabelKey(Arc<[String]>);

impl LabelValues for LabelKey {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn value(&self, i: usize) -> &str {
        self.0.get(i).map_or("", String::as_str)
    }
}

impl Hash for LabelKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn LabelValues).hash(state);
    }
}

impl PartialEq for LabelKey {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn LabelValues) == (other as &dyn LabelValues)
    }
}

impl Eq for LabelKey {}

impl<'a> Borrow<dyn LabelValues + 'a> for LabelKey {
    fn borrow(&self) -> &(dyn LabelValues + 'a) {
        self
    }
}

/// Borrowed label values: the probe for a lookup.
struct Probe<'a>(&'a [&'a str]);

impl LabelValues for Probe<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn value(&self, i: usize) -> &str {
        self.0.get(i).copied().unwrap_or("")
    }
}

/// The machinery shared by [`CounterVec`] and [`HistogramVec`].
#[derive(Debug)]
struct Labelled<T> {
    label_names: Box<[String]>,
    limit: usize,
    series: RwLock<crate::FastMap<LabelKey, Arc<T>>>,
    /// Where lookups go once `limit` label sets exist; rendered with every label `_overflow`.
    overflow: Arc<T>,
    /// Lookups sent to `overflow`.
    overflowed: Counter,
}

impl<T: Series> Labelled<T> {
    fn new(label_names: Box<[String]>, limit: usize, overflow: T) -> Self {
        Labelled {
            label_names,
            limit,
            series: RwLock::new(crate::FastMap::default()),
            overflow: Arc::new(overflow),
            overflowed: Counter::new(),
        }
    }

    /// Runs `f` on the series for `values`, without touching its `Arc`'s count when it exists.
    #[inline]
    fn apply<R>(&self, values: &[&str], f: impl FnOnce(&T) -> R) -> R {
        if values.len() == self.label_names.len() {
            let map = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = map.get(&Probe(values) as &dyn LabelValues) {
                return f(s);
            }
        }
        f(&self.create(values))
    }

    #[inline]
    fn with(&self, values: &[&str]) -> Arc<T> {
        if values.len() == self.label_names.len() {
            let map = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = map.get(&Probe(values) as &dyn LabelValues) {
                return Arc::clone(s);
            }
        }
        self.create(values)
    }

    /// The slow path: a label set not in the map (or a malformed one).
    #[cold]
    #[inline(never)]
    fn create(&self, values: &[&str]) -> Arc<T> {
        if values.len() != self.label_names.len() {
            debug_assert!(
                false,
                "{} label values for labels {:?}",
                values.len(),
                self.label_names
            );
            return self.to_overflow();
        }
        // A caller's own `_overflow` label set is the overflow series, not a second series that
        // would render with the same labels.
        if !values.is_empty() && values.iter().all(|v| *v == OVERFLOW_LABEL_VALUE) {
            return self.to_overflow();
        }
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have made it between our read and write locks.
        if let Some(s) = map.get(&Probe(values) as &dyn LabelValues) {
            return Arc::clone(s);
        }
        if map.len() >= self.limit {
            drop(map);
            return self.to_overflow();
        }
        let series = Arc::new(self.overflow.fresh());
        let key = LabelKey(values.iter().map(|v| (*v).to_owned()).collect());
        map.insert(key, Arc::clone(&series));
        series
    }

    fn to_overflow(&self) -> Arc<T> {
        self.overflowed.inc();
        Arc::clone(&self.overflow)
    }

    fn len(&self) -> usize {
        self.series.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Every series, the overflow one included once used, sorted by label values.
    fn snapshot(&self) -> Vec<(LabelKey, Arc<T>)> {
        let mut all: Vec<(LabelKey, Arc<T>)> = {
            let map = self.series.read().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .map(|(k, v)| (k.clone(), Arc::clone(v)))
                .collect()
        };
        if self.overflowed.get() > 0 {
            let key = self
                .label_names
                .iter()
                .map(|_| OVERFLOW_LABEL_VALUE.to_owned())
                .collect();
            all.push((LabelKey(key), Arc::clone(&self.overflow)));
        }
        all.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
        all
    }
}

/// Counters by label values. Label names are fixed at creation.
#[derive(Debug)]
pub struct CounterVec {
    inner: Labelled<Counter>,
}

impl CounterVec {
    /// A family outside any registry (it is not rendered); [`Registry::counter_vec`] makes one
    /// that is.
    pub fn new(label_names: &[&str], limit: usize) -> Self {
        CounterVec {
            inner: Labelled::new(
                checked_label_names(label_names, false),
                limit,
                Counter::new(),
            ),
        }
    }

    /// The series for `values`, one per label name, in order. Creates it if new and the family
    /// has room; otherwise (or if the number of values is wrong) gives the overflow series.
    #[inline]
    pub fn with(&self, values: &[&str]) -> Arc<Counter> {
        self.inner.with(values)
    }

    /// `with(values).inc()` without cloning the `Arc`.
    #[inline]
    pub fn inc(&self, values: &[&str]) {
        self.inner.apply(values, Counter::inc);
    }

    /// `with(values).add(n)` without cloning the `Arc`.
    #[inline]
    pub fn add(&self, values: &[&str], n: u64) {
        self.inner.apply(values, |c| c.add(n));
    }

    pub fn label_names(&self) -> &[String] {
        &self.inner.label_names
    }

    /// Label sets held, the overflow series not included.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that went to the overflow series.
    pub fn overflow_count(&self) -> u64 {
        self.inner.overflowed.get()
    }
}

/// Histograms by label values, all with the same buckets. Label names are fixed at creation.
#[derive(Debug)]
pub struct HistogramVec {
    inner: Labelled<Histogram>,
}

impl HistogramVec {
    /// A family outside any registry (it is not rendered); [`Registry::histogram_vec`] makes one
    /// that is.
    pub fn new(label_names: &[&str], buckets: &[f64], limit: usize) -> Self {
        HistogramVec {
            inner: Labelled::new(
                checked_label_names(label_names, true),
                limit,
                Histogram::new(buckets),
            ),
        }
    }

    /// The series for `values`; see [`CounterVec::with`].
    #[inline]
    pub fn with(&self, values: &[&str]) -> Arc<Histogram> {
        self.inner.with(values)
    }

    /// `with(values).observe(v)` without cloning the `Arc`.
    #[inline]
    pub fn observe(&self, values: &[&str], v: f64) {
        self.inner.apply(values, |h| h.observe(v));
    }

    /// `with(values).observe_duration(d)` without cloning the `Arc`.
    #[inline]
    pub fn observe_duration(&self, values: &[&str], d: Duration) {
        self.inner.apply(values, |h| h.observe_duration(d));
    }

    pub fn label_names(&self) -> &[String] {
        &self.inner.label_names
    }

    /// Label sets held, the overflow series not included.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that went to the overflow series.
    pub fn overflow_count(&self) -> u64 {
        self.inner.overflowed.get()
    }
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with the reserved `__`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Invalid characters become `_`; a name that cannot start with its first character gets a `_`
/// in front.
fn sanitize(name: &str, colon_ok: bool) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colon_ok && c == ':');
    let mut out: String = name.chars().map(|c| if ok(c) { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn checked_metric_name(name: &str) -> String {
    debug_assert!(is_valid_metric_name(name), "invalid metric name {name:?}");
    if is_valid_metric_name(name) {
        name.to_owned()
    } else {
        sanitize(name, true)
    }
}

/// Valid, distinct label names (and no `le` on a histogram); a bad one fails a debug assertion
/// and is sanitised, renamed `label_<i>` if still unusable.
fn checked_label_names(names: &[&str], histogram: bool) -> Box<[String]> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, &name) in names.iter().enumerate() {
        let usable = |n: &str, seen: &HashSet<String>| {
            is_valid_label_name(n) && !(histogram && n == "le") && !seen.contains(n)
        };
        debug_assert!(
            usable(name, &seen),
            "invalid or repeated label name {name:?}"
        );
        let mut fixed = if usable(name, &seen) {
            name.to_owned()
        } else {
            sanitize(name.trim_start_matches('_'), false)
        };
        if !usable(&fixed, &seen) {
            fixed = format!("label_{i}");
        }
        while !usable(&fixed, &seen) {
            fixed.push('_');
        }
        seen.insert(fixed.clone());
        out.push(fixed);
    }
    out.into()
}

// ---------------------------------------------------------------------------------------------
// Registry and rendering
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Metric {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
    CounterVec(Arc<CounterVec>),
    HistogramVec(Arc<HistogramVec>),
}

impl Metric {
    fn is_histogram(&self) -> bool {
        matches!(self, Metric::Histogram(_) | Metric::HistogramVec(_))
    }
}

#[derive(Debug)]
struct Family {
    help: String,
    metric: Metric,
}

/// The sample names a family writes: a histogram `h` writes `h_bucket`, `h_sum` and `h_count`.
fn sample_names(name: &str, histogram: bool) -> Vec<String> {
    if histogram {
        vec![
            format!("{name}_bucket"),
            format!("{name}_sum"),
            format!("{name}_count"),
        ]
    } else {
        vec![name.to_owned()]
    }
}

/// A set of metric families, rendered in name order.
#[derive(Debug)]
pub struct Registry {
    families: RwLock<BTreeMap<String, Family>>,
    label_set_limit: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// Labelled families hold at most [`DEFAULT_LABEL_SET_LIMIT`] label sets each.
    pub fn new() -> Self {
        Registry::with_label_set_limit(DEFAULT_LABEL_SET_LIMIT)
    }

    /// Labelled families made by `counter_vec`/`histogram_vec` hold at most `limit` label sets.
    pub fn with_label_set_limit(limit: usize) -> Self {
        Registry {
            families: RwLock::new(BTreeMap::new()),
            label_set_limit: limit,
        }
    }

    pub fn counter(&self, name: &str, help: &str) -> Arc<Counter> {
        let c = Arc::new(Counter::new());
        self.register(name, help, Metric::Counter(Arc::clone(&c)));
        c
    }

    pub fn gauge(&self, name: &str, help: &str) -> Arc<Gauge> {
        let g = Arc::new(Gauge::new());
        self.register(name, help, Metric::Gauge(Arc::clone(&g)));
        g
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Arc<Histogram> {
        let h = Arc::new(Histogram::new(buckets));
        self.register(name, help, Metric::Histogram(Arc::clone(&h)));
        h
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> Arc<CounterVec> {
        self.counter_vec_with_limit(name, help, labels, self.label_set_limit)
    }

    pub fn counter_vec_with_limit(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        limit: usize,
    ) -> Arc<CounterVec> {
        let v = Arc::new(CounterVec::new(labels, limit));
        self.register(name, help, Metric::CounterVec(Arc::clone(&v)));
        v
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Arc<HistogramVec> {
        self.histogram_vec_with_limit(name, help, labels, buckets, self.label_set_limit)
    }

    pub fn histogram_vec_with_limit(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
        limit: usize,
    ) -> Arc<HistogramVec> {
        let v = Arc::new(HistogramVec::new(labels, buckets, limit));
        self.register(name, help, Metric::HistogramVec(Arc::clone(&v)));
        v
    }

    /// Adds a family unless its name (or one of the sample names it writes) is taken; a taken
    /// name fails a debug assertion and the metric, still usable, is left unrendered.
    fn register(&self, name: &str, help: &str, metric: Metric) {
        let name = checked_metric_name(name);
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        let mut taken: HashSet<String> = families
            .iter()
            .flat_map(|(n, f)| sample_names(n, f.metric.is_histogram()))
            .collect();
        taken.insert(OVERFLOW_METRIC.to_owned());
        let clash = sample_names(&name, metric.is_histogram())
            .iter()
            .any(|s| taken.contains(s));
        if clash {
            debug_assert!(false, "metric name {name:?} registered twice");
            return;
        }
        families.insert(
            name,
            Family {
                help: help.to_owned(),
                metric,
            },
        );
    }

    /// Every family in the text exposition format 0.0.4, in name order, series in label order.
    pub fn render(&self) -> String {
        // Snapshot the families (cheap `Arc` clones) so no lock is held while formatting.
        let families: Vec<(String, String, Metric)> = {
            let families = self.families.read().unwrap_or_else(|e| e.into_inner());
            families
                .iter()
                .map(|(n, f)| (n.clone(), f.help.clone(), f.metric.clone()))
                .collect()
        };
        let overflow: Vec<(&str, u64)> = families
            .iter()
            .filter_map(|(n, _, m)| match m {
                Metric::CounterVec(v) => Some((n.as_str(), v.overflow_count())),
                Metric::HistogramVec(v) => Some((n.as_str(), v.overflow_count())),
                _ => None,
            })
            .collect();

        let mut out = String::with_capacity(4096);
        let mut overflow_done = overflow.is_empty();
        for (name, help, metric) in &families {
            if !overflow_done && name.as_str() > OVERFLOW_METRIC {
                render_overflow(&mut out, &overflow);
                overflow_done = true;
            }
            render_family(&mut out, name, help, metric);
        }
        if !overflow_done {
            render_overflow(&mut out, &overflow);
        }
        out
    }
}

fn render_overflow(out: &mut String, rows: &[(&str, u64)]) {
    write_header(
        out,
        OVERFLOW_METRIC,
        "Lookups sent to a labelled family's _overflow series because it held its maximum number of label sets.",
        "counter",
    );
    let names = ["family".to_owned()];
    for (family, n) in rows {
        out.push_str(OVERFLOW_METRIC);
        write_labels(out, &names, &[family], None);
        let _ = writeln!(out, " {n}");
    }
}

fn render_family(out: &mut String, name: &str, help: &str, metric: &Metric) {
    match metric {
        Metric::Counter(c) => {
            write_header(out, name, help, "counter");
            let _ = writeln!(out, "{name} {}", c.get());
        }
        Metric::Gauge(g) => {
            write_header(out, name, help, "gauge");
            let _ = writeln!(out, "{name} {}", g.get());
        }
        Metric::Histogram(h) => {
            write_header(out, name, help, "histogram");
            write_histogram(out, name, &[], &[], h);
        }
        Metric::CounterVec(v) => {
            write_header(out, name, help, "counter");
            let names = v.label_names();
            for (key, c) in v.inner.snapshot() {
                let values: Vec<&str> = key.0.iter().map(String::as_str).collect();
                out.push_str(name);
                write_labels(out, names, &values, None);
                let _ = writeln!(out, " {}", c.get());
            }
        }
        Metric::HistogramVec(v) => {
            write_header(out, name, help, "histogram");
            let names = v.label_names();
            for (key, h) in v.inner.snapshot() {
                let values: Vec<&str> = key.0.iter().map(String::as_str).collect();
                write_histogram(out, name, names, &values, &h);
            }
        }
    }
}

fn write_header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = write!(out, "# HELP {name} ");
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    let _ = writeln!(out, "\n# TYPE {name} {kind}");
}

/// `{a="x",b="y"}` (with `le` last when given), or nothing when there are no labels.
fn write_labels(out: &mut String, names: &[String], values: &[&str], le: Option<f64>) {
    if names.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in names.iter().zip(values) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if let Some(le) = le {
        if !first {
            out.push(',');
        }
        out.push_str("le=\"");
        write_float(out, le);
        out.push('"');
    }
    out.push('}');
}

fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // Shortest round-trip decimal, never an exponent: 0.005, 1, 2.5.
        let _ = write!(out, "{v}");
    }
}

fn write_histogram(out: &mut String, name: &str, names: &[String], values: &[&str], h: &Histogram) {
    let cumulative = h.cumulative_counts();
    let count = cumulative.last().copied().unwrap_or(0);
    for (i, n) in cumulative.iter().enumerate() {
        let le = h.bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let _ = write!(out, "{name}_bucket");
        write_labels(out, names, values, Some(le));
        let _ = writeln!(out, " {n}");
    }
    let _ = write!(out, "{name}_sum");
    write_labels(out, names, values, None);
    out.push(' ');
    write_float(out, h.sum());
    out.push('\n');
    let _ = write!(out, "{name}_count");
    write_labels(out, names, values, None);
    let _ = writeln!(out, " {count}");
}

// ---------------------------------------------------------------------------------------------
// The proxy's metrics
// ---------------------------------------------------------------------------------------------

/// `"2xx"` for 204 and so on; `"other"` outside 100..=599.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// The request method as a label value: the standard methods by name, anything else `"OTHER"`,
/// so a client inventing methods cannot spend a family's label sets.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

/// Every metric the proxy exports, created once so call sites are typed and names live here.
#[derive(Debug)]
pub struct ProxyMetrics {
    /// `consentgate_requests_total{site, method, status_class}`; see [`status_class`] and
    /// [`method_label`].
    pub requests: Arc<CounterVec>,
    /// `consentgate_request_duration_seconds{site, kind}`, kind `html` | `passthrough` |
    /// `endpoint` | `beacon`.
    pub request_duration: Arc<HistogramVec>,
    /// `consentgate_pages_rewritten_total{site, mode}`, mode `blocking` | `inject_only`.
    pub pages_rewritten: Arc<CounterVec>,
    /// `consentgate_elements_neutralized_total{site, service}`.
    pub neutralized: Arc<CounterVec>,
    /// `consentgate_decisions_total{site, method}`.
    pub decisions: Arc<CounterVec>,
    /// `consentgate_upstream_errors_total{site, kind}`, kind `connect` | `timeout` | `protocol` |
    /// `body`.
    pub upstream_errors: Arc<CounterVec>,
    /// `consentgate_upstream_ejections_total{site, upstream}`: an origin address left out
    /// after a failed connection (passive health).
    pub upstream_ejections: Arc<CounterVec>,
    /// `consentgate_limits_hit_total{limit}`: `header_read_timeout`, `max_connections`,
    /// `inline_script_cap`, `decompression_ratio`, `body_size`, `rewriter_memory`, ...
    pub limits_hit: Arc<CounterVec>,
    /// `consentgate_fail_closed_total{site, reason}`.
    pub fail_closed: Arc<CounterVec>,
    /// `consentgate_open_connections`.
    pub connections: Arc<Gauge>,
    /// `consentgate_receipts_committed_total`.
    pub receipts_committed: Arc<Counter>,
    /// `consentgate_receipt_errors_total`.
    pub receipt_errors: Arc<Counter>,
    /// `consentgate_csp_reports_total{site, directive}`.
    pub csp_reports: Arc<CounterVec>,
    pub registry: Registry,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics::new()
    }
}

impl ProxyMetrics {
    pub fn new() -> ProxyMetrics {
        ProxyMetrics::with_label_set_limit(DEFAULT_LABEL_SET_LIMIT)
    }

    /// Each labelled family holds at most `limit` label sets.
    pub fn with_label_set_limit(limit: usize) -> ProxyMetrics {
        let r = Registry::with_label_set_limit(limit);
        ProxyMetrics {
            requests: r.counter_vec(
                "consentgate_requests_total",
                "Requests served, by site, method and response status class.",
                &["site", "method", "status_class"],
            ),
            request_duration: r.histogram_vec(
                "consentgate_request_duration_seconds",
                "Request handling time in seconds, by site and kind (html, passthrough, endpoint, beacon).",
                &["site", "kind"],
                LATENCY_BUCKETS,
            ),
            pages_rewritten: r.counter_vec(
                "consentgate_pages_rewritten_total",
                "HTML pages rewritten, by site and mode (blocking, inject_only).",
                &["site", "mode"],
            ),
            neutralized: r.counter_vec(
                "consentgate_elements_neutralized_total",
                "Elements neutralized pending consent, by site and service.",
                &["site", "service"],
            ),
            decisions: r.counter_vec(
                "consentgate_decisions_total",
                "Consent decisions recorded, by site and method.",
                &["site", "method"],
            ),
            upstream_errors: r.counter_vec(
                "consentgate_upstream_errors_total",
                "Upstream failures, by site and kind (connect, timeout, protocol, body).",
                &["site", "kind"],
            ),
            upstream_ejections: r.counter_vec(
                "consentgate_upstream_ejections_total",
                "Origin addresses left out after a failed connection, by site and address.",
                &["site", "upstream"],
            ),
            limits_hit: r.counter_vec(
                "consentgate_limits_hit_total",
                "Times a resource limit was hit, by limit.",
                &["limit"],
            ),
            fail_closed: r.counter_vec(
                "consentgate_fail_closed_total",
                "Responses that failed closed, by site and reason.",
                &["site", "reason"],
            ),
            connections: r.gauge(
                "consentgate_open_connections",
                "Client connections currently open.",
            ),
            receipts_committed: r.counter(
                "consentgate_receipts_committed_total",
                "Consent receipts committed to the store.",
            ),
            receipt_errors: r.counter(
                "consentgate_receipt_errors_total",
                "Consent receipts that could not be committed.",
            ),
            csp_reports: r.counter_vec(
                "consentgate_csp_reports_total",
                "CSP violation reports received, by site and directive.",
                &["site", "directive"],
            ),
            registry: r,
        }
    }

    /// The exposition text; serve it with `Content-Type: `[`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::mpsc;
    use std::thread;

    /// One sample line of the exposition text.
    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    impl Sample {
        fn label(&self, name: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn parse_float(s: &str) -> Result<f64, String> {
        match s {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ if s
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')) =>
            {
                s.parse::<f64>()
                    .map_err(|e| format!("bad value {s:?}: {e}"))
            }
            _ => Err(format!("bad value {s:?}")),
        }
    }

    /// A strict little parser for the text format 0.0.4 as this module writes it: `# HELP` and
    /// `# TYPE` once per family, before its samples; every other line `name{labels} value`.
    fn parse(text: &str) -> Result<Vec<Sample>, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("no final newline".into());
        }
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut helps: BTreeSet<String> = BTreeSet::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut samples = Vec::new();
        for (no, line) in text.lines().enumerate() {
            let err = |m: &str| format!("line {}: {m}: {line:?}", no + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("");
                if !is_valid_metric_name(name) || !helps.insert(name.to_owned()) {
                    return Err(err("bad or repeated HELP"));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if !is_valid_metric_name(name)
                    || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                    || parts.next().is_some()
                    || types.insert(name.to_owned(), kind.to_owned()).is_some()
                {
                    return Err(err("bad or repeated TYPE"));
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                return Err(err("unexpected comment or blank line"));
            }
            // name
            let end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
            let name = &line[..end];
            if !is_valid_metric_name(name) {
                return Err(err("bad metric name"));
            }
            let mut rest = &line[end..];
            // labels
            let mut labels: Vec<(String, String)> = Vec::new();
            if let Some(r) = rest.strip_prefix('{') {
                rest = r;
                loop {
                    if let Some(r) = rest.strip_prefix('}') {
                        rest = r;
                        break;
                    }
                    let eq = rest.find('=').ok_or_else(|| err("label without ="))?;
                    let lname = &rest[..eq];
                    if !is_valid_label_name(lname) && lname != "le" {
                        return Err(err("bad label name"));
                    }
                    if labels.iter().any(|(n, _)| n == lname) {
                        return Err(err("repeated label"));
                    }
                    rest = rest[eq + 1..]
                        .strip_prefix('"')
                        .ok_or_else(|| err("unquoted label value"))?;
                    let mut value = String::new();
                    let mut chars = rest.char_indices();
                    let close = loop {
                        match chars.next() {
                            None => return Err(err("unterminated label value")),
                            Some((i, '"')) => break i,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, '\\')) => value.push('\\'),
                                Some((_, '"')) => value.push('"'),
                                Some((_, 'n')) => value.push('\n'),
                                _ => return Err(err("bad escape")),
                            },
                            Some((_, c)) => value.push(c),
                        }
                    };
                    labels.push((lname.to_owned(), value));
                    rest = &rest[close + 1..];
                    if let Some(r) = rest.strip_prefix(',') {
                        rest = r;
                    } else if !rest.starts_with('}') {
                        return Err(err("expected , or }"));
                    }
                }
            }
            let value = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("no space before value"))?;
            let value = parse_float(value).map_err(|e| err(&e))?;
            // The family must be declared first.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(name);
            if !types.contains_key(family) {
                return Err(err("sample before its TYPE"));
            }
            if (types[family] == "histogram") != (family != name) {
                return Err(err("histogram sample without suffix, or vice versa"));
            }
            if name.ends_with("_bucket") && family != name && !labels.iter().any(|(n, _)| n == "le")
            {
                return Err(err("bucket without le"));
            }
            if !seen.insert(format!("{name}{labels:?}")) {
                return Err(err("repeated series"));
            }
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        Ok(samples)
    }

    /// Buckets cumulative and `+Inf` equal to `_count`, per histogram series.
    fn check_histograms(samples: &[Sample]) {
        let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        let series_key = |s: &Sample, base: &str| {
            let labels: Vec<_> = s.labels.iter().filter(|(n, _)| n != "le").collect();
            format!("{base}{labels:?}")
        };
        for s in samples {
            if let Some(base) = s.name.strip_suffix("_bucket") {
                let le = parse_float(s.label("le").unwrap_or("x")).unwrap_or(f64::NAN);
                buckets
                    .entry(series_key(s, base))
                    .or_default()
                    .push((le, s.value));
            } else if let Some(base) = s.name.strip_suffix("_count") {
                counts.insert(series_key(s, base), s.value);
            }
        }
        for (key, bs) in &buckets {
            assert!(bs.windows(2).all(|w| w[0].0 < w[1].0), "{key}: le order");
            assert!(bs.windows(2).all(|w| w[0].1 <= w[1].1), "{key}: cumulative");
            let last = bs.last().copied().unwrap_or((0.0, 0.0));
            assert_eq!(last.0, f64::INFINITY, "{key}: +Inf last");
            assert_eq!(Some(&last.1), counts.get(key), "{key}: +Inf == count");
        }
    }

    fn parse_ok(text: &str) -> Vec<Sample> {
        let samples = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        check_histograms(&samples);
        samples
    }

    #[test]
    fn renders_a_counter() {
        let r = Registry::new();
        let c = r.counter("test_events_total", "Events seen.");
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        let text = r.render();
        assert_eq!(
            text,
            "# HELP test_events_total Events seen.\n\
             # TYPE test_events_total counter\n\
             test_events_total 42\n"
        );
        parse_ok(&text);
    }

    #[test]
    fn renders_a_gauge() {
        let r = Registry::new();
        let g = r.gauge("test_open", "Open things.\nSecond line \\ backslash.");
        g.set(5);
        g.inc();
        g.dec();
        g.dec();
        assert_eq!(g.get(), 4);
        assert_eq!(
            r.render(),
            "# HELP test_open Open things.\\nSecond line \\\\ backslash.\n\
             # TYPE test_open gauge\n\
             test_open 4\n"
        );
        g.set(-3);
        let text = r.render();
        assert!(text.ends_with("test_open -3\n"), "{text}");
        assert_eq!(parse_ok(&text)[0].value, -3.0);
    }

    #[test]
    fn renders_a_labelled_counter_with_escaped_values() {
        let r = Registry::new();
        let v = r.counter_vec("test_hits_total", "Hits.", &["path", "note"]);
        v.with(&["/b", "plain"]).inc();
        v.add(&["/a", "quote \" backslash \\ newline \n end"], 3);
        v.inc(&["/b", "plain"]);
        assert_eq!(v.len(), 2);
        let text = r.render();
        let expected = r#"# HELP consentgate_metrics_overflow_total Lookups sent to a labelled family's _overflow series because it held its maximum number of label sets.
# TYPE consentgate_metrics_overflow_total counter
consentgate_metrics_overflow_total{family="test_hits_total"} 0
# HELP test_hits_total Hits.
# TYPE test_hits_total counter
test_hits_total{path="/a",note="quote \" backslash \\ newline \n end"} 3
test_hits_total{path="/b",note="plain"} 2
"#;
        assert_eq!(text, expected);
        let samples = parse_ok(&text);
        assert_eq!(
            samples[1].label("note"),
            Some("quote \" backslash \\ newline \n end")
        );
    }

    #[test]
    fn renders_a_histogram_cumulatively() {
        let r = Registry::new();
        let h = r.histogram("test_latency_seconds", "Latency.", &[0.125, 0.5, 1.0]);
        h.observe(0.0625);
        h.observe(0.125); // upper bounds are inclusive
        h.observe(0.375);
        h.observe(2.0);
        h.observe_duration(Duration::from_millis(250));
        h.observe(f64::NAN); // dropped
        h.observe(f64::INFINITY); // dropped
        assert_eq!(h.count(), 5);
        let text = r.render();
        assert_eq!(
            text,
            "# HELP test_latency_seconds Latency.\n\
             # TYPE test_latency_seconds histogram\n\
             test_latency_seconds_bucket{le=\"0.125\"} 2\n\
             test_latency_seconds_bucket{le=\"0.5\"} 4\n\
             test_latency_seconds_bucket{le=\"1\"} 4\n\
             test_latency_seconds_bucket{le=\"+Inf\"} 5\n\
             test_latency_seconds_sum 2.8125\n\
             test_latency_seconds_count 5\n"
        );
        parse_ok(&text);
    }

    #[test]
    fn renders_a_labelled_histogram() {
        let r = Registry::new();
        let v = r.histogram_vec(
            "test_seconds",
            "Time.",
            &["kind"],
            &[0.5, 1.0, f64::INFINITY],
        );
        v.observe(&["b"], 0.75);
        v.with(&["a"]).observe(0.25);
        v.observe_duration(&["a"], Duration::from_secs(3));
        let text = r.render();
        let expected = "# HELP consentgate_metrics_overflow_total Lookups sent to a labelled family's _overflow series because it held its maximum number of label sets.
# TYPE consentgate_metrics_overflow_total counter
consentgate_metrics_overflow_total{family=\"test_seconds\"} 0
# HELP test_seconds Time.
# TYPE test_seconds histogram
test_seconds_bucket{kind=\"a\",le=\"0.5\"} 1
test_seconds_bucket{kind=\"a\",le=\"1\"} 1
test_seconds_bucket{kind=\"a\",le=\"+Inf\"} 2
test_seconds_sum{kind=\"a\"} 3.25
test_seconds_count{kind=\"a\"} 2
test_seconds_bucket{kind=\"b\",le=\"0.5\"} 0
test_seconds_bucket{kind=\"b\",le=\"1\"} 1
test_seconds_bucket{kind=\"b\",le=\"+Inf\"} 1
test_seconds_sum{kind=\"b\"} 0.75
test_seconds_count{kind=\"b\"} 1
";
        assert_eq!(text, expected);
        parse_ok(&text);
    }

    #[test]
    fn families_render_in_name_order_with_overflow_in_place() {
        let r = Registry::new();
        r.counter("zz_total", "z").inc();
        r.counter_vec("aa_total", "a", &["x"]).inc(&["1"]);
        r.gauge("mm", "m").set(1);
        let names: Vec<String> = r
            .render()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap_or("").to_owned())
            .collect();
        assert_eq!(names, ["aa_total", OVERFLOW_METRIC, "mm", "zz_total"]);
        assert_eq!(r.render(), r.render());
    }

    #[test]
    fn concurrent_increments_are_exact() {
        const THREADS: usize = 8;
        const N: u64 = 100_000;
        let r = Registry::new();
        let shared = r.counter_vec("test_shared_total", "s", &["method", "status"]);
        let distinct = r.counter_vec("test_distinct_total", "d", &["thread"]);
        let hist = r.histogram_vec("test_hist_seconds", "h", &["k"], LATENCY_BUCKETS);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (shared, distinct, hist) = (&shared, &distinct, &hist);
                s.spawn(move || {
                    let id = t.to_string();
                    let held = shared.with(&["GET", "200"]);
                    for i in 0..N {
                        if i % 2 == 0 {
                            shared.with(&["GET", "200"]).inc();
                        } else {
                            shared.inc(&["GET", "200"]);
                        }
                        distinct.inc(&[&id]);
                        held.inc();
                        hist.observe(&["x"], 0.5);
                    }
                });
            }
        });
        let total = THREADS as u64 * N;
        assert_eq!(shared.with(&["GET", "200"]).get(), 2 * total);
        assert_eq!(shared.len(), 1);
        assert_eq!(distinct.len(), THREADS);
        for t in 0..THREADS {
            assert_eq!(distinct.with(&[&t.to_string()]).get(), N);
        }
        let h = hist.with(&["x"]);
        assert_eq!(h.count(), total);
        assert_eq!(h.sum(), 0.5 * total as f64);
        assert_eq!(shared.overflow_count() + distinct.overflow_count(), 0);

        let samples = parse_ok(&r.render());
        let value = |name: &str, label: (&str, &str)| {
            samples
                .iter()
                .find(|s| s.name == name && s.label(label.0) == Some(label.1))
                .map(|s| s.value)
        };
        assert_eq!(
            value("test_shared_total", ("status", "200")),
            Some(2.0 * total as f64)
        );
        assert_eq!(
            value("test_distinct_total", ("thread", "7")),
            Some(N as f64)
        );
        assert_eq!(
            value("test_hist_seconds_count", ("k", "x")),
            Some(total as f64)
        );
    }

    #[test]
    fn cardinality_is_bounded() {
        let r = Registry::new();
        let v = r.counter_vec_with_limit("test_hosts_total", "h", &["host", "method"], 100);
        let h = r.histogram_vec_with_limit("test_host_seconds", "h", &["host"], &[1.0], 100);
        for i in 0..5000 {
            let host = format!("h{i:04}.example");
            v.inc(&[&host, "GET"]);
            h.observe(&[&host], 0.5);
        }
        // Already-known label sets still get their own series once the family is full.
        v.inc(&["h0000.example", "GET"]);
        assert_eq!(v.with(&["h0000.example", "GET"]).get(), 2);

        assert_eq!(v.len(), 100);
        assert_eq!(v.overflow_count(), 4900);
        assert_eq!(v.with(&["_overflow", "_overflow"]).get(), 4900);
        assert_eq!(v.overflow_count(), 4901); // that lookup went to the overflow series too
        assert_eq!(h.len(), 100);
        assert_eq!(h.overflow_count(), 4900);

        let samples = parse_ok(&r.render());
        let series: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == "test_hosts_total")
            .collect();
        assert_eq!(series.len(), 101);
        let overflow: Vec<&&Sample> = series
            .iter()
            .filter(|s| s.label("host") == Some(OVERFLOW_LABEL_VALUE))
            .collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(overflow[0].label("method"), Some(OVERFLOW_LABEL_VALUE));
        assert_eq!(overflow[0].value, 4900.0);
        let counted = |family: &str| {
            samples
                .iter()
                .find(|s| s.name == OVERFLOW_METRIC && s.label("family") == Some(family))
                .map(|s| s.value)
        };
        assert_eq!(counted("test_hosts_total"), Some(4901.0));
        assert_eq!(counted("test_host_seconds"), Some(4900.0));
        let hist_counts = samples
            .iter()
            .filter(|s| s.name == "test_host_seconds_count")
            .count();
        assert_eq!(hist_counts, 101);
    }

    #[test]
    fn a_families_own_overflow_label_set_is_the_overflow_series() {
        let v = CounterVec::new(&["a"], 10);
        v.inc(&["_overflow"]);
        assert_eq!(v.len(), 0);
        assert_eq!(v.overflow_count(), 1);
        assert!(Arc::ptr_eq(&v.with(&["_overflow"]), &v.inner.overflow));
    }

    #[test]
    fn with_on_an_existing_series_takes_no_write_lock() {
        let v = Arc::new(CounterVec::new(&["site"], 10));
        v.inc(&["known"]);
        let guard = v.inner.series.read().unwrap_or_else(|e| e.into_inner());

        // With a read guard held elsewhere, a write lock cannot be had; an existing series is
        // still found.
        let (tx, rx) = mpsc::channel();
        let v2 = Arc::clone(&v);
        thread::spawn(move || {
            v2.inc(&["known"]);
            let _ = tx.send(v2.with(&["known"]).get());
        });
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Ok(2),
            "with() on an existing series blocked behind a read guard"
        );

        // Control: a new label set needs the write lock, so it waits for the guard.
        let (tx, rx) = mpsc::channel();
        let v2 = Arc::clone(&v);
        thread::spawn(move || {
            v2.inc(&["new"]);
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(guard);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(()));
        assert_eq!(v.with(&["new"]).get(), 1);
    }

    #[test]
    fn a_poisoned_lock_does_not_panic() {
        let v = Arc::new(CounterVec::new(&["a"], 10));
        let v2 = Arc::clone(&v);
        let _ = thread::spawn(move || {
            let _guard = v2.inner.series.write().unwrap_or_else(|e| e.into_inner());
            panic!("poison the lock");
        })
        .join();
        assert!(v.inner.series.is_poisoned());
        v.inc(&["x"]);
        v.inc(&["x"]);
        assert_eq!(v.with(&["x"]).get(), 2);
        let r = Registry::new();
        r.counter("a_total", "a");
        assert!(r.render().contains("a_total 0\n"));
    }

    #[test]
    fn names() {
        for ok in ["a", "_a", ":a", "a_b:c9", "consentgate_requests_total"] {
            assert!(is_valid_metric_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a b", "é", "a{b}"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
        assert!(is_valid_label_name("site") && is_valid_label_name("_x1"));
        for bad in ["", "__name__", "a:b", "1a", "a-b"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
        assert_eq!(sanitize("9a-b", true), "_9a_b");
        assert_eq!(sanitize("", true), "_");
        assert_eq!(sanitize("a:b", false), "a_b");
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_duplicate_name_fails_a_debug_assertion() {
        let r = Registry::new();
        r.counter("test_total", "a");
        r.counter("test_total", "b");
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_histogram_suffix_clash_fails_a_debug_assertion() {
        let r = Registry::new();
        r.histogram("test", "a", &[1.0]);
        r.counter("test_count", "b");
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "label values")]
    fn wrong_label_arity_fails_a_debug_assertion() {
        CounterVec::new(&["a", "b"], 10).inc(&["only one"]);
    }

    #[test]
    fn the_test_parser_rejects_malformed_text() {
        let head = "# HELP m h\n# TYPE m counter\n";
        assert!(parse(&format!("{head}m 1\n")).is_ok());
        assert!(parse(&format!("{head}m{{a=\"x\\\"y\"}} 1\n")).is_ok());
        for bad in [
            "m 1\n",                 // no TYPE first
            "# TYPE m counter\nm 1", // no final newline
            "# TYPE m counter\nm one\n",
            "# TYPE m counter\nm{a=x} 1\n",
            "# TYPE m counter\nm{a=\"x} 1\n",
            "# TYPE m counter\nm{a=\"\\t\"} 1\n", // unknown escape
            "# TYPE m counter\nm{a=\"1\",a=\"2\"} 1\n",
            "# TYPE m counter\nm 1\nm 2\n",
            "# TYPE m counter\n# TYPE m counter\nm 1\n",
            "# TYPE 9m counter\n",
            "# TYPE h histogram\nh 1\n",
            "# TYPE h histogram\nh_bucket 1\n",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        let hist = "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n";
        let samples = parse(hist).unwrap_or_default();
        let caught = std::panic::catch_unwind(|| check_histograms(&samples));
        assert!(caught.is_err(), "non-cumulative buckets accepted");
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn registration_mistakes_fall_back_safely_in_release() {
        let r = Registry::new();
        let a = r.counter("dup_total", "first");
        let b = r.counter("dup_total", "second");
        a.inc();
        b.add(5); // works, but is not rendered
        let h = r.histogram("h", "h", &[2.0, 1.0, f64::NAN, 1.0]);
        h.observe(1.5);
        let c = r.counter("h_count", "clashes with h's samples");
        c.inc();
        r.counter("9bad-name", "sanitised").inc();
        let v = r.counter_vec("v_total", "v", &["le", "le", "__x", "a-b"]);
        v.inc(&["only one"]); // wrong arity: the overflow series
        v.inc(&["1", "2", "3", "4"]);
        let text = r.render();
        let samples = parse_ok(&text);
        assert!(text.contains("dup_total 1\n") && text.contains("# HELP dup_total first\n"));
        assert!(
            text.contains("h_bucket{le=\"1\"} 0\nh_bucket{le=\"2\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("h_count 1\n") && !text.contains("HELP h_count"));
        assert!(text.contains("_9bad_name 1\n"), "{text}");
        assert!(
            text.contains("v_total{le=\"1\",label_1=\"2\",x=\"3\",a_b=\"4\"} 1\n"),
            "{text}"
        );
        assert_eq!(v.overflow_count(), 1);
        assert!(samples
            .iter()
            .any(|s| s.name == "v_total" && s.label("le") == Some("_overflow")));
    }

    #[test]
    fn status_classes_and_methods() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(502), "5xx");
        assert_eq!(status_class(0), "other");
        assert_eq!(status_class(600), "other");
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "OTHER");
    }

    #[test]
    fn proxy_metrics_render_every_family() {
        let m = ProxyMetrics::new();
        m.requests
            .inc(&["example.com", method_label("GET"), status_class(200)]);
        m.request_duration
            .observe_duration(&["example.com", "html"], Duration::from_micros(1_500));
        m.pages_rewritten.inc(&["example.com", "blocking"]);
        m.neutralized.add(&["example.com", "google-analytics"], 3);
        m.decisions.inc(&["example.com", "accept_all"]);
        m.upstream_errors.inc(&["example.com", "timeout"]);
        m.upstream_ejections
            .inc(&["example.com", "http://10.0.0.1:8080/"]);
        m.limits_hit.inc(&["body_size"]);
        m.fail_closed.inc(&["example.com", "rewriter_error"]);
        m.connections.inc();
        m.receipts_committed.inc();
        m.receipt_errors.add(0);
        m.csp_reports.inc(&["example.com", "script-src"]);

        let text = m.render();
        let samples = parse_ok(&text);
        let mut declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let sorted = {
            let mut s = declared.clone();
            s.sort_unstable();
            s
        };
        assert_eq!(declared, sorted);
        declared.retain(|n| *n != OVERFLOW_METRIC);
        assert_eq!(
            declared,
            [
                "consentgate_csp_reports_total",
                "consentgate_decisions_total",
                "consentgate_elements_neutralized_total",
                "consentgate_fail_closed_total",
                "consentgate_limits_hit_total",
                "consentgate_open_connections",
                "consentgate_pages_rewritten_total",
                "consentgate_receipt_errors_total",
                "consentgate_receipts_committed_total",
                "consentgate_request_duration_seconds",
                "consentgate_requests_total",
                "consentgate_upstream_ejections_total",
                "consentgate_upstream_errors_total",
            ]
        );
        assert!(text.contains(
            "consentgate_requests_total{site=\"example.com\",method=\"GET\",status_class=\"2xx\"} 1\n"
        ));
        assert!(text.contains(
            "consentgate_request_duration_seconds_bucket{site=\"example.com\",kind=\"html\",le=\"0.001\"} 0\n\
             consentgate_request_duration_seconds_bucket{site=\"example.com\",kind=\"html\",le=\"0.0025\"} 1\n"
        ));
        assert!(text.contains("consentgate_open_connections 1\n"));
        assert_eq!(
            samples.iter().filter(|s| s.name == OVERFLOW_METRIC).count(),
            10,
            "one overflow row per labelled family"
        );
    }

    #[test]
    fn types_are_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Registry>();
        shareable::<ProxyMetrics>();
        shareable::<CounterVec>();
        shareable::<HistogramVec>();
    }
}
