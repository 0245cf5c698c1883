// The text specs of the command line and of metadata: --trigger (names and patch:ROW,COL,SIZE,COLOUR),
// --defenses, --methods, and the integer and number fields read from metadata and CSV files. The
// first byte picks the parser (and, for triggers, the image's channel count).
#include "apps/defend_command.h"
#include "apps/study_command.h"
#include "attacks/attacks.h"
#include "engine/parse.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  if (size == 0) return 0;
  const std::string text(fuzz::bytes_of(data + 1, size - 1));
  fuzz::expect_clean([&] {
    switch (data[0] % 6) {
      case 0:
      case 1: {
        // blend:<path> opens a file: the image decoder has its own target.
        if (text.starts_with("blend:")) return;
        const int64_t channels = data[0] % 2 ? 3 : 1;
        const Trigger t = make_trigger(text, channels, 32, 32, 0.2, 7);
        std::vector<uint8_t> image(static_cast<size_t>(channels * 32 * 32), 128);
        apply_trigger(t, image.data(), channels, 32, 32);
        break;
      }
      case 2: chosen_defenses(text); break;
      case 3: chosen_methods(text); break;
      case 4: parse_int(text, "field", -1000, 1000); break;
      default: parse_double(text, "field"); break;
    }
  });
  return 0;
}
