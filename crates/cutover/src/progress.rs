//! Progress on stderr: one bar per table with rows and ETA. Hidden when stderr is not a
//! terminal, so logs and CI output stay clean.

use std::sync::Mutex;

use cutover_core::TableName;
use cutover_diff::{Progress, TableReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct DiffProgress {
    bar: Mutex<Option<ProgressBar>>,
    tables: usize,
    done: Mutex<usize>,
}

impl DiffProgress {
    pub fn new(tables: usize) -> DiffProgress {
        DiffProgress {
            bar: Mutex::new(None),
            tables,
            done: Mutex::new(0),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

impl Progress for DiffProgress {
    fn table_started(&self, source: &TableName, estimated_rows: u64) {
        let done = *self.done.lock().unwrap_or_else(|p| p.into_inner());
        let bar = ProgressBar::with_draw_target(
            Some(estimated_rows.max(1)),
            ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {msg:30} [{bar:30}] {human_pos}/{human_len} rows, {elapsed} elapsed, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("[{}/{}]", done + 1, self.tables));
        bar.set_message(source.to_string());
        if let Some(old) = self
            .bar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn rows_done(&self, _source: &TableName, rows: u64) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // Estimates can be low; grow the bar rather than overflow it.
            let pos = b.position() + rows;
            if let Some(len) = b.length() {
                if pos > len {
                    b.set_length(pos);
                }
            }
            b.set_position(pos);
        }
    }

    fn table_finished(&self, _report: &TableReport) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.finish();
    }
}
