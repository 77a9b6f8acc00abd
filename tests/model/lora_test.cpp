// LoRA adapters on the decoder (model/lora.h). On the CPU backend: a fresh adapter changes
// nothing, the base model is reachable with use_adapters = false, merging agrees with the adapter
// term and unmerging restores the weights, PEFT files round-trip, a frozen base computes no
// base-weight gradients, and the backward matches finite differences in float64. On the GPU
// against the CPU backend, every linear layer adapted and the base frozen: hidden states, adapter
// and token-embedding gradients, merged outputs.
#include "model/lora.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "kernels/cross_entropy.h"
#include "model/decoder.h"
#include "model/peft.h"
#include "model/safetensors.h"
#include "tests/support/backends.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

namespace fs = std::filesystem;

ModelConfig small_config() {
  ModelConfig config;
  config.vocab_size = 50;
  config.max_len = 16;
  config.d_model = 64;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  return config;
}

LoraConfig all_linear(int rank = 4, float dropout = 0.1f) {
  LoraConfig lora;
  lora.rank = rank;
  lora.alpha = 8.0f;
  lora.dropout = dropout;
  lora.targets = {"all_linear"};
  return lora;
}

PackedBatch random_batch(std::mt19937_64& rng, const ModelConfig& config,
                         std::initializer_list<int> lengths) {
  PackedBatch batch = empty_batch();
  for (int length : lengths) {
    batch.add_sequence(random_ints(rng, length, 0, config.vocab_size),
                       random_ints(rng, length, -1, config.vocab_size));
  }
  return batch;
}

// Adapter values with A from `seed` and B drawn N(0, stddev²), so the adapters change the output.
template <typename T>
std::vector<float> random_adapters(const Decoder<T>& model, std::mt19937_64& rng, double stddev) {
  std::vector<float> values = initial_lora_parameters(model.lora_layout(), rng());
  for (const ParameterInfo& info : model.lora_layout().tensors()) {
    if (!info.name.ends_with(".lora_B")) continue;
    std::vector<float> b = random_normal<float>(rng, info.size, stddev);
    std::copy(b.begin(), b.end(), values.begin() + info.offset);
  }
  return values;
}

template <typename T>
std::vector<T> hidden_of(Decoder<T>& model, const DeviceBatch& batch,
                         const ForwardOptions& options) {
  model.forward(batch, options);
  const size_t n = static_cast<size_t>(batch.num_tokens()) * model.config().d_model;
  return std::vector<T>(model.hidden(), model.hidden() + n);
}

std::vector<double> as_double(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

// ---- Configuration and layout ---------------------------------------------------------------

TEST(LoraConfig, ScaleIsAlphaOverRankOrOverItsSquareRootWithRslora) {
  LoraConfig lora;
  lora.rank = 16;
  lora.alpha = 32.0f;
  EXPECT_FLOAT_EQ(lora.scale(), 2.0f);
  lora.rslora = true;
  EXPECT_FLOAT_EQ(lora.scale(), 8.0f);
}

TEST(LoraConfig, AnUnknownTargetIsAnErrorListingTheValidOnes) {
  LoraConfig lora;
  lora.targets = {"qkv", "mlp"};
  try {
    lora.validate();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "unknown LoRA target 'mlp' (expected one of: qkv, attn_out, mlp_fc, mlp_proj, "
                  "all_linear)"),
              std::string::npos)
        << e.what();
  }
}

TEST(LoraConfig, AllLinearResolvesToTheFourLayersInOrder) {
  LoraConfig lora;
  lora.targets = {"mlp_proj", "all_linear", "qkv"};
  EXPECT_EQ(lora.resolved_targets(),
            (std::vector<LoraTarget>{LoraTarget::kQkv, LoraTarget::kAttnOut, LoraTarget::kMlpFc,
                                     LoraTarget::kMlpProj}));
}

TEST(LoraLayout, NamesEachAdapterAfterItsWeightWithAlignedOffsets) {
  const ModelConfig config = small_config();
  LoraConfig lora = all_linear(3);
  const LoraLayout layout(config, lora);
  const ParameterLayout base(config);
  const int64_t C = config.d_model, F = config.mlp_width();
  EXPECT_EQ(layout.tensors().size(), 2u * 4u * config.n_layer);
  EXPECT_EQ(layout.at("h.1.attn.qkv.lora_A").shape, (std::vector<int64_t>{3, C}));
  EXPECT_EQ(layout.at("h.1.attn.qkv.lora_B").shape, (std::vector<int64_t>{3 * C, 3}));
  EXPECT_EQ(layout.at("h.0.mlp.proj.lora_A").shape, (std::vector<int64_t>{3, F}));
  EXPECT_EQ(layout.at("h.0.mlp.proj.lora_B").shape, (std::vector<int64_t>{C, 3}));
  for (const ParameterInfo& info : layout.tensors()) {
    EXPECT_EQ(info.offset % 16, 0) << info.name << " is not on a 64-byte boundary";
    // The weight it adapts exists under the matching name, [out, in] = [B rows, A columns].
    const std::string module = info.name.substr(0, info.name.rfind('.'));
    const ParameterInfo& weight = base.at(module + ".weight");
    EXPECT_EQ(info.name.ends_with("lora_A") ? info.shape[1] : info.shape[0],
              info.name.ends_with("lora_A") ? weight.shape[1] : weight.shape[0])
        << info.name;
  }
}

// ---- Decoder forward ------------------------------------------------------------------------

TEST(DecoderLora, FreshAdaptersLeaveTheOutputBitwiseUnchanged) {
  std::mt19937_64 rng(fresh_seed());
  const ModelConfig config = small_config();
  const PackedBatch host = random_batch(rng, config, {5, 1, 16, 7});
  const DeviceBatch batch(Device::kCpu, host, config);
  Decoder<float> base(Context::cpu(), config, host.num_tokens());
  Decoder<float> adapted(Context::cpu(), config, host.num_tokens());
  adapted.enable_lora(all_linear(8, 0.2f), 3);
  for (bool training : {false, true}) {
    const ForwardOptions options{AttentionMask::kCausal, training, 99};
    EXPECT_TRUE(bitwise_equal(hidden_of(base, batch, options), hidden_of(adapted, batch, options)))
        << (training ? "training" : "eval");
  }
}

TEST(DecoderLora, WithoutAdaptersTheForwardIsTheBaseModel) {
  std::mt19937_64 rng(fresh_seed());
  const ModelConfig config = small_config();
  const PackedBatch host = random_batch(rng, config, {9, 4, 12});
  const DeviceBatch batch(Device::kCpu, host, config);
  Decoder<float> base(Context::cpu(), config, host.num_tokens());
  Decoder<float> adapted(Context::cpu(), config, host.num_tokens());
  adapted.enable_lora(all_linear(), 1);
  adapted.load_adapter_parameters(random_adapters(adapted, rng, 0.1));
  ForwardOptions options{AttentionMask::kCausal, true, 5};
  const std::vector<float> with_adapters = hidden_of(adapted, batch, options);
  options.use_adapters = false;
  const std::vector<float> reference = hidden_of(adapted, batch, options);
  EXPECT_TRUE(bitwise_equal(reference, hidden_of(base, batch, options)));
  const double change = relative_error(with_adapters, as_double(reference));
  report_error("lora adapters' change of the hidden states", change);
  EXPECT_GT(change, 1e-3) << "the adapters should change the output";
}

// ---- Merge ----------------------------------------------------------------------------------

class DecoderLoraMerge : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_.seed(fresh_seed());
    model_.enable_lora(all_linear(8), 2);
    model_.load_adapter_parameters(random_adapters(model_, rng_, 0.1));
  }
  const ModelConfig config_ = small_config();
  std::mt19937_64 rng_;
  const PackedBatch host_ = [this] {
    std::mt19937_64 rng(7);
    return random_batch(rng, config_, {6, 11, 3});
  }();
  const DeviceBatch batch_{Device::kCpu, host_, config_};
  Decoder<float> model_{Context::cpu(), config_, host_.num_tokens()};
};

TEST_F(DecoderLoraMerge, MergedWeightsGiveTheAdaptersOutputAndUnmergeRestoresThem) {
  const ForwardOptions options{AttentionMask::kBidirectional, false, 0};
  const std::vector<float> weights = model_.parameters().download();
  const std::vector<float> adapted = hidden_of(model_, batch_, options);
  model_.merge_lora();
  EXPECT_TRUE(model_.lora_merged());
  const std::vector<float> merged = hidden_of(model_, batch_, options);
  const double merge_error = relative_error(merged, as_double(adapted));
  report_error("lora merged vs adapter outputs", merge_error);
  EXPECT_LT(merge_error, 1e-5);

  model_.unmerge_lora();
  const std::vector<float> restored = model_.parameters().download();
  const double weight_error = relative_error(restored, as_double(weights));
  report_error("lora weights after merge + unmerge", weight_error);
  EXPECT_LT(weight_error, 1e-7);
  const std::vector<float> unmerged = hidden_of(model_, batch_, options);
  const double unmerge_error = relative_error(unmerged, as_double(adapted));
  report_error("lora unmerged vs adapter outputs", unmerge_error);
  EXPECT_LT(unmerge_error, 1e-5);
}

TEST_F(DecoderLoraMerge, RefusesANonFiniteMergeAndChangesNothing) {
  // B[0, 5] · A[5, :] is finite in double but overflows float.
  std::vector<float> adapters = model_.adapter_parameters().download();
  const ParameterInfo& a = model_.lora_layout().at("h.1.mlp.proj.lora_A");
  adapters[model_.lora_layout().at("h.1.mlp.proj.lora_B").offset + 5] = 3e38f;
  std::fill_n(adapters.begin() + a.offset + 5 * a.shape[1], a.shape[1], 100.0f);
  model_.load_adapter_parameters(adapters);
  const std::vector<float> weights = model_.parameters().download();
  try {
    model_.merge_lora();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("h.1.mlp.proj.weight + s·B·A is not finite"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(model_.lora_merged());
  EXPECT_TRUE(bitwise_equal(model_.parameters().download(), weights));
}

TEST_F(DecoderLoraMerge, MergingTwiceOrLoadingWhileMergedIsRefused) {
  model_.merge_lora();
  EXPECT_THROW(model_.merge_lora(), Error);
  EXPECT_THROW(model_.load_adapter_parameters(model_.adapter_parameters().download()), Error);
  model_.unmerge_lora();
  EXPECT_THROW(model_.unmerge_lora(), Error);
}

// ---- PEFT files -----------------------------------------------------------------------------

class PeftAdapter : public DecoderLoraMerge {
 protected:
  void TearDown() override { fs::remove_all(dir_); }
  const fs::path dir_ = fs::temp_directory_path() / ("recforge_peft_" + std::to_string(getpid()));
};

TEST_F(PeftAdapter, RoundTripGivesIdenticalOutputs) {
  const ForwardOptions options{AttentionMask::kCausal, false, 0};
  const std::vector<float> expected = hidden_of(model_, batch_, options);
  save_peft_adapter(dir_, model_);
  Decoder<float> loaded(Context::cpu(), config_, host_.num_tokens());
  const LoraConfig config = load_peft_adapter(dir_, loaded);
  EXPECT_EQ(config.rank, 8);
  EXPECT_EQ(config.targets, (std::vector<std::string>{"qkv", "attn_out", "mlp_fc", "mlp_proj"}));
  EXPECT_FLOAT_EQ(config.dropout, 0.1f);
  EXPECT_TRUE(bitwise_equal(loaded.adapter_parameters().download(),
                            model_.adapter_parameters().download()));
  EXPECT_TRUE(bitwise_equal(hidden_of(loaded, batch_, options), expected));
}

TEST_F(PeftAdapter, FilesFollowPeftsLayout) {
  save_peft_adapter(dir_, model_);
  SafetensorsFile weights = SafetensorsFile::read(dir_ / "adapter_model.safetensors");
  EXPECT_EQ(weights.shape("base_model.model.h.0.attn.qkv.lora_A.weight"),
            (std::vector<int64_t>{8, 64}));
  EXPECT_EQ(weights.shape("base_model.model.h.0.attn.qkv.lora_B.weight"),
            (std::vector<int64_t>{192, 8}));
  EXPECT_EQ(weights.names().size(), model_.lora_layout().tensors().size());
  std::ifstream in(dir_ / "adapter_config.json");
  const nlohmann::json config = nlohmann::json::parse(in);
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["r"], 8);
  EXPECT_EQ(config["lora_alpha"], 8.0);
  EXPECT_EQ(config["lora_dropout"], 0.1);
  EXPECT_EQ(config["use_rslora"], false);
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["fan_in_fan_out"], false);
  EXPECT_EQ(config["target_modules"],
            (nlohmann::json{"attn.qkv", "attn.out", "mlp.fc", "mlp.proj"}));
  EXPECT_FALSE(fs::exists(dir_ / "adapter_config.json.tmp"));
}

// Rewrites one key of the saved adapter_config.json.
void edit_config(const fs::path& dir, const std::string& key, const nlohmann::json& value) {
  const fs::path file = dir / "adapter_config.json";
  nlohmann::json config = nlohmann::json::parse(std::ifstream(file));
  config[key] = value;
  std::ofstream(file) << config.dump();
}

std::string load_error(const fs::path& dir, const ModelConfig& config, int max_tokens) {
  Decoder<float> model(Context::cpu(), config, max_tokens);
  try {
    load_peft_adapter(dir, model);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST_F(PeftAdapter, ARankThatDisagreesWithTheTensorsNamesFileKeyAndShapes) {
  save_peft_adapter(dir_, model_);
  edit_config(dir_, "r", 4);
  const std::string error = load_error(dir_, config_, 8);
  EXPECT_NE(error.find("adapter_model.safetensors: tensor "
                       "'base_model.model.h.0.attn.qkv.lora_A.weight' has shape [8, 64], "
                       "expected [4, 64]"),
            std::string::npos)
      << error;
}

TEST_F(PeftAdapter, BadConfigValuesNameTheKeyAndWhatWasExpected) {
  save_peft_adapter(dir_, model_);
  edit_config(dir_, "target_modules", nlohmann::json{"attn.qkv", "lm_head"});
  std::string error = load_error(dir_, config_, 8);
  EXPECT_NE(error.find("adapter_config.json: key 'target_modules[1]': expected a list of some of"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("got \"lm_head\""), std::string::npos) << error;
  save_peft_adapter(dir_, model_);
  edit_config(dir_, "peft_type", "IA3");
  error = load_error(dir_, config_, 8);
  EXPECT_NE(error.find("key 'peft_type': expected \"LORA\", got \"IA3\""), std::string::npos)
      << error;
}

TEST_F(PeftAdapter, TensorsOfLayersTheConfigDoesNotTargetAreRefused) {
  save_peft_adapter(dir_, model_);
  edit_config(dir_, "target_modules", nlohmann::json{"attn.qkv", "attn.out", "mlp.fc"});
  const std::string error = load_error(dir_, config_, 8);
  EXPECT_NE(error.find("unexpected tensor 'base_model.model.h.0.mlp.proj.lora_A.weight'"),
            std::string::npos)
      << error;
}

// ---- Backward -------------------------------------------------------------------------------

struct TrainingStep {
  std::vector<float> gradients, adapter_gradients;
};

TrainingStep training_step(const ModelConfig& config, const PackedBatch& host,
                           const std::vector<float>& adapters, bool frozen) {
  Decoder<float> model(Context::cpu(), config, host.num_tokens());
  model.enable_lora(all_linear(), 0);
  model.load_adapter_parameters(adapters);
  model.set_base_frozen(frozen);
  const DeviceBatch batch(Device::kCpu, host, config);
  model.forward(batch, {AttentionMask::kCausal, true, 21});
  model.output_loss(batch, true);
  model.backward(batch, true);
  return {model.gradients().download(), model.adapter_gradients().download()};
}

TEST(DecoderLoraBackward, AFrozenBaseGetsNoWeightGradientsButWteAndTheAdaptersDo) {
  std::mt19937_64 rng(fresh_seed());
  const ModelConfig config = small_config();
  const PackedBatch host = random_batch(rng, config, {7, 3, 12});
  Decoder<float> probe(Context::cpu(), config, 1);
  probe.enable_lora(all_linear(), 0);
  const std::vector<float> adapters = random_adapters(probe, rng, 0.1);
  const TrainingStep frozen = training_step(config, host, adapters, true);
  const TrainingStep trained = training_step(config, host, adapters, false);

  const ParameterLayout& layout = probe.layout();
  for (const ParameterInfo& info : layout.tensors()) {
    auto begin = frozen.gradients.begin() + info.offset;
    const bool all_zero = std::all_of(begin, begin + info.size, [](float g) { return g == 0.0f; });
    EXPECT_EQ(all_zero, info.name != "wte") << info.name;
  }
  // The token embedding's gradient and the adapters' are those of the unfrozen model: dx flows
  // through every layer unchanged.
  const ParameterInfo& wte = layout.at("wte");
  EXPECT_TRUE(std::equal(frozen.gradients.begin(), frozen.gradients.begin() + wte.size,
                         trained.gradients.begin()));
  EXPECT_TRUE(bitwise_equal(frozen.adapter_gradients, trained.adapter_gradients));
  for (const ParameterInfo& info : probe.lora_layout().tensors()) {
    auto begin = frozen.adapter_gradients.begin() + info.offset;
    EXPECT_TRUE(std::any_of(begin, begin + info.size, [](float g) { return g != 0.0f; }))
        << info.name << " got no gradient";
  }
}

TEST(DecoderLoraBackward, ZeroGradientsClearsTheAdapterGradients) {
  std::mt19937_64 rng(fresh_seed());
  const ModelConfig config = small_config();
  const PackedBatch host = random_batch(rng, config, {5, 8});
  const DeviceBatch batch(Device::kCpu, host, config);
  Decoder<float> model(Context::cpu(), config, host.num_tokens());
  model.enable_lora(all_linear(), 0);
  model.load_adapter_parameters(random_adapters(model, rng, 0.1));
  model.forward(batch, {AttentionMask::kCausal, true, 3});
  model.output_loss(batch, true);
  model.backward(batch, true);
  model.zero_gradients();
  const std::vector<float> gradients = model.adapter_gradients().download();
  EXPECT_TRUE(std::all_of(gradients.begin(), gradients.end(), [](float g) { return g == 0.0f; }));
}

// Float64 finite differences (as in decoder_gradcheck_test.cpp) with every linear layer adapted,
// dropout on in the trunk and on the adapters: a few entries of every adapter tensor (dA, dB) and
// of every base tensor (dx reaches wte and wpe through every adapted layer; the base weights'
// gradients add to the adapters').
TEST(DecoderLoraBackward, MatchesFiniteDifferencesInFloat64) {
  constexpr int kEntriesPerTensor = 4;
  constexpr double kStep = 1e-5;
  std::mt19937_64 rng(fresh_seed());
  ModelConfig config;
  config.vocab_size = 23;
  config.max_len = 8;
  config.d_model = 32;
  config.n_layer = 2;
  config.n_head = 1;
  config.mlp_ratio = 2;
  config.dropout = 0.1f;
  const PackedBatch host = random_batch(rng, config, {3, 1, 8, 5});
  const DeviceBatch batch(Device::kCpu, host, config);
  Decoder<double> model(Context::cpu(), config, host.num_tokens());
  LoraConfig lora = all_linear(3, 0.2f);
  lora.rslora = true;
  model.enable_lora(lora, 4);
  const std::vector<double> base = random_normal<double>(rng, model.layout().total_size(), 0.3);
  std::vector<double> adapters;
  for (float x : random_adapters(model, rng, 0.3)) adapters.push_back(x);
  const ForwardOptions options{AttentionMask::kCausal, true, 77};
  auto loss_at = [&](const std::vector<double>& theta, const std::vector<double>& phi) {
    model.parameters().upload(theta);
    model.adapter_parameters().upload(phi);
    model.forward(batch, options);
    return model.output_loss(batch, false);
  };

  loss_at(base, adapters);
  model.zero_gradients();
  model.output_loss(batch, true);
  model.backward(batch, true);
  const std::vector<double> analytic = model.gradients().download();
  const std::vector<double> analytic_adapters = model.adapter_gradients().download();

  // Checks kEntriesPerTensor entries of `info` in `values` (the base or the adapters).
  auto check = [&](const ParameterInfo& info, bool adapter) {
    double worst = 0.0;
    for (int e = 0; e < kEntriesPerTensor; ++e) {
      const int64_t i = info.offset + std::uniform_int_distribution<int64_t>(0, info.size - 1)(rng);
      std::vector<double> theta = base, phi = adapters;
      std::vector<double>& values = adapter ? phi : theta;
      const double original = values[i];
      values[i] = original + kStep;
      const double up = loss_at(theta, phi);
      values[i] = original - kStep;
      const double down = loss_at(theta, phi);
      const double numeric = (up - down) / (2 * kStep);
      const double exact = adapter ? analytic_adapters[i] : analytic[i];
      const double scale = std::max({std::abs(numeric), std::abs(exact), 1e-4});
      worst = std::max(worst, std::abs(numeric - exact) / scale);
    }
    report_error("lora gradcheck.fp64.grad." + info.name, worst);
    EXPECT_LT(worst, 1e-5) << info.name;
  };
  for (const ParameterInfo& info : model.lora_layout().tensors()) check(info, true);
  for (const ParameterInfo& info : model.layout().tensors()) check(info, false);
}

// ---- The CUDA backend against the CPU backend -----------------------------------------------

class DecoderLoraGpuTest : public GpuTest {};

TEST_F(DecoderLoraGpuTest, FrozenBaseStepMatchesTheCpuBackend) {
  ModelConfig config;
  config.vocab_size = 777;
  config.max_len = 64;
  config.d_model = 128;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  LoraConfig lora;
  lora.rank = 8;
  lora.dropout = 0.1f;
  lora.targets = {"all_linear"};
  PackedBatch host = empty_batch();
  uint32_t seed = 3;
  for (int length : {1, 17, 64, 0, 33, 2}) {
    host.add_sequence(random_ints(length, seed, 0, config.vocab_size - 1),
                      random_ints(length, seed + 1, kIgnoreIndex, config.vocab_size - 1));
    seed += 2;
  }
  const std::vector<float> initial =
      random_floats(ParameterLayout(config).total_size(), 9, -0.1f, 0.1f);
  std::vector<float> adapters =
      random_floats(LoraLayout(config, lora).total_size(), 10, -0.1f, 0.1f);
  std::vector<std::vector<float>> hidden, wte_gradient, adapter_gradients, merged;
  for (const Context& ctx : {cpu_, cuda_}) {
    Decoder<float> model(ctx, config, host.num_tokens());
    model.load_parameters(initial);
    model.enable_lora(lora, 1);
    model.load_adapter_parameters(adapters);
    model.set_base_frozen(true);
    DeviceBatch batch(ctx.device(), host, config);
    model.forward(batch, {AttentionMask::kCausal, true, 5});
    const size_t NC = static_cast<size_t>(host.num_tokens()) * config.d_model;
    hidden.emplace_back(NC);
    copy_bytes(hidden.back().data(), Device::kCpu, model.hidden(), ctx.device(), NC * 4);
    model.output_loss(batch, true);
    model.backward(batch, true);
    std::vector<float> gradients = model.gradients().download();
    wte_gradient.emplace_back(gradients.begin(), gradients.begin() + model.layout().at("wte").size);
    adapter_gradients.push_back(model.adapter_gradients().download());
    model.merge_lora();
    merged.push_back(model.parameters().download());
  }
  const double errors[] = {relative_error(hidden[1], hidden[0]),
                           relative_error(wte_gradient[1], wte_gradient[0]),
                           relative_error(adapter_gradients[1], adapter_gradients[0]),
                           relative_error(merged[1], merged[0])};
  const char* names[] = {"hidden", "wte gradient", "adapter gradients", "merged parameters"};
  for (int i = 0; i < 4; ++i) {
    std::cout << "[ rel_err ] decoder.lora." << names[i] << ": " << errors[i] << std::endl;
    EXPECT_LT(errors[i], 1e-4) << names[i];
  }
}

}  // namespace
}  // namespace recforge::testing
