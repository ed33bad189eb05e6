//! Counts the guest instructions executed between two marker functions, per pair:
//! `-plugin libinsn_count.so,begin=ADDR,end=ADDR,out=FILE` (addresses in decimal). At exit it
//! writes one count per line to `FILE`.
//!
//! Counting is per translation block: when a block starts executing, all its instructions are
//! added. The marker functions are called, so each starts its own block; an interrupt taken
//! in the middle of a block (SysTick, every 2^24 cycles) can over-count by the rest of that
//! block, a few instructions.

use qemu_plugin::install::{Args, Info};
use qemu_plugin::plugin::{HasCallbacks, Register};
use qemu_plugin::{register, PluginId, TranslationBlock};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counts {
    counting: bool,
    current: u64,
    done: Vec<u64>,
}

#[derive(Default)]
struct InsnCount {
    begin: u64,
    end: u64,
    counts: Arc<Mutex<Counts>>,
}

fn arg(args: &Args, key: &str) -> Option<String> {
    args.raw.iter().find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')).map(str::to_string))
}

impl Register for InsnCount {
    fn register(&mut self, id: PluginId, args: &Args, _info: &Info) -> qemu_plugin::Result<()> {
        // Thumb function symbols have bit 0 set; block addresses do not.
        self.begin = arg(args, "begin").and_then(|v| v.parse().ok()).unwrap_or(0) & !1;
        self.end = arg(args, "end").and_then(|v| v.parse().ok()).unwrap_or(0) & !1;
        let out = arg(args, "out").unwrap_or_else(|| "insn-count.txt".into());
        let counts = self.counts.clone();
        qemu_plugin::qemu_plugin_register_atexit_cb(id, move |_| {
            let counts = counts.lock().map(|c| c.done.clone()).unwrap_or_default();
            let text: String = counts.iter().map(|c| format!("{c}\n")).collect();
            let _ = std::fs::write(&out, text);
        })
    }
}

impl HasCallbacks for InsnCount {
    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> qemu_plugin::Result<()> {
        let (vaddr, n) = (tb.vaddr(), tb.size() as u64);
        let (begin, end) = (self.begin, self.end);
        let counts = self.counts.clone();
        tb.register_execute_callback(move |_| {
            let Ok(mut c) = counts.lock() else { return };
            if vaddr == begin {
                c.counting = true;
                c.current = 0;
            }
            if c.counting {
                c.current += n;
            }
            if vaddr == end && c.counting {
                c.counting = false;
                let current = c.current;
                c.done.push(current);
            }
        });
        Ok(())
    }
}

register!(InsnCount::default());
