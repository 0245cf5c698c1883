// The JSON state files read when a run resumes or reports: the first byte picks the file kind,
// the rest is its text. Sizes are those of a 100-sample training set.
#include "studies/state_files.h"
#include "tests/fuzz/fuzz.h"
#include "training/trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  if (size == 0) return 0;
  const std::string_view text = fuzz::bytes_of(data + 1, size - 1);
  fuzz::expect_clean([&] {
    const json j = parse_json(text, "state.json");
    switch (data[0] % 8) {
      case 0: read_accuracy_asr(j, "result.json"); break;
      case 1: read_detection(j, "detection.json", 100); break;
      case 2: check_setting(j, json{{"setting", "s"}, {"poison_fraction", 0.1}, {"seed", 3}}, "setting.json"); break;
      case 3: describe_setting(j, "setting.json"); break;
      case 4: read_cell(j, "cell.json"); break;
      case 5: read_selection(j, "selection.json", data[0] & 8 ? 100 : -1); break;
      case 6: history_from_json(json_field(j, "history", "metrics.json"), "metrics.json"); break;
      default:
        for (const char* k : {"clean_acc", "asr", "pruned_acc", "pruned_test_loss"}) optional_number(j, k, "result.json");
        break;
    }
  });
  return 0;
}
