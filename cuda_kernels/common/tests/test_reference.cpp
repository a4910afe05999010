// The host reference of every op against a direct, unfused double-precision evaluation written from
// the layer definitions (not from the shared arithmetic); each op's checks are in its folder
// (ops/<op>/tests/test_reference.cpp), run here in a fixed order from one seed.
#include <cstdio>
#include <random>

#include "op_tests.h"
#include "test_util.h"

using namespace maed_test;

int main() {
    std::mt19937 rng(7);
    ds_block_reference_cases(rng);
    se_fusion_reference_cases(rng);
    ds_block_reference_refusals(rng);
    se_fusion_reference_refusals(rng);
    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "passed", g_failures);
    return g_failures ? 1 : 0;
}
