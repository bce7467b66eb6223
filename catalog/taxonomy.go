package catalog

import (
	_ "embed"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// The fideslang taxonomy files, shipped unchanged ("fideslang taxonomy by
// Ethyca, CC BY 4.0"; see fideslang/README.md).
var (
	//go:embed fideslang/data_categories.yml
	dataCategoriesYAML []byte
	//go:embed fideslang/data_uses.yml
	dataUsesYAML []byte
	//go:embed fideslang/category_names.zh-CN.txt
	categoryNamesZH string
	//go:embed fideslang/data_use_names.zh-CN.txt
	dataUseNamesZH string
)

// sensitiveCategories are the fideslang keys that PIPL Art. 28 (and, for
// special categories, GDPR Art. 9 and 10) makes sensitive; every key under
// them is sensitive too. fideslang has no user.genetic or user.sensitive:
// genetic data is user.health_and_medical.genetic.
var sensitiveCategories = []string{
	"user.biometric",                      // biometric
	"user.authorization.biometric",        // biometric used to log in
	"user.health_and_medical",             // medical and health, genetic
	"user.financial",                      // financial accounts
	"user.location.precise",               // whereabouts, location trajectory
	"user.childrens",                      // personal information of minors under 14
	"user.demographic.religious_belief",   // religious belief
	"user.demographic.race_ethnicity",     // specific identity
	"user.demographic.sexual_orientation", // GDPR Art. 9 special category
	"user.demographic.political_opinion",  // GDPR Art. 9 special category
	"user.criminal_history",               // GDPR Art. 10; GB/T 35273 Annex B
	"user.government_id",                  // identity documents, GB/T 35273 Annex B
}

var taxonomy struct {
	once       sync.Once
	categories map[string]bool
	uses       map[string]bool
	names      map[string]Text // category key → name in zh-CN and en
	useNames   map[string]Text // data-use key → name in zh-CN and en
}

func loadTaxonomy() {
	taxonomy.categories = fidesKeys(dataCategoriesYAML, "data_category")
	taxonomy.uses = fidesKeys(dataUsesYAML, "data_use")
	taxonomy.names = taxonomyNames(dataCategoriesYAML, "data_category", categoryNamesZH)
	taxonomy.useNames = taxonomyNames(dataUsesYAML, "data_use", dataUseNamesZH)
}

// taxonomyNames reads the English names of the keys under top from the
// taxonomy file and the Chinese ones from zh, Portrait's translation
// (category_names.zh-CN.txt, data_use_names.zh-CN.txt).
func taxonomyNames(data []byte, top, zh string) map[string]Text {
	var doc map[string][]struct {
		Key  string `yaml:"fides_key"`
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		panic("catalog: embedded fideslang " + top + ": " + err.Error())
	}
	names := make(map[string]Text, len(doc[top]))
	for _, e := range doc[top] {
		names[e.Key] = Text{"en": e.Name}
	}
	for _, line := range strings.Split(zh, "\n") {
		key, name, ok := strings.Cut(line, "\t")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if t := names[key]; t != nil {
			t["zh-CN"] = name
		}
	}
	return names
}

// CategoryName is the name of a data category in lang ("zh-CN" or "en"),
// for people to read; the key itself when the taxonomy does not know it.
func CategoryName(key, lang string) string {
	taxonomy.once.Do(loadTaxonomy)
	if t := taxonomy.names[key]; t != nil {
		if n := t.In(lang); n != "" {
			return n
		}
	}
	return key
}

// DataUseName is the name of a data use in lang ("zh-CN" or "en"), for
// people to read; the key itself when the taxonomy does not know it.
func DataUseName(key, lang string) string {
	taxonomy.once.Do(loadTaxonomy)
	if t := taxonomy.useNames[key]; t != nil {
		if n := t.In(lang); n != "" {
			return n
		}
	}
	return key
}

// fidesKeys returns the non-deprecated keys of an embedded taxonomy file. The
// files are part of the binary, so a failure is a build defect, not bad input.
func fidesKeys(data []byte, top string) map[string]bool {
	var doc map[string][]struct {
		Key        string  `yaml:"fides_key"`
		Deprecated *string `yaml:"version_deprecated"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		panic("catalog: embedded fideslang " + top + ": " + err.Error())
	}
	keys := make(map[string]bool, len(doc[top]))
	for _, e := range doc[top] {
		if e.Deprecated == nil {
			keys[e.Key] = true
		}
	}
	return keys
}

// KnownCategory reports whether key is a fideslang data_category key.
func KnownCategory(key string) bool {
	taxonomy.once.Do(loadTaxonomy)
	return taxonomy.categories[key]
}

// KnownDataUse reports whether key is a fideslang data_use key.
func KnownDataUse(key string) bool {
	taxonomy.once.Do(loadTaxonomy)
	return taxonomy.uses[key]
}

// Categories lists the fideslang data_category keys, sorted.
func Categories() []string {
	taxonomy.once.Do(loadTaxonomy)
	return sortedKeys(taxonomy.categories)
}

// DataUses lists the fideslang data_use keys, sorted.
func DataUses() []string {
	taxonomy.once.Do(loadTaxonomy)
	return sortedKeys(taxonomy.uses)
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SensitiveCategory reports whether data of the category is sensitive
// personal information under PIPL Art. 28 (SM-1).
func SensitiveCategory(key string) bool {
	for _, s := range sensitiveCategories {
		if Under(key, s) {
			return true
		}
	}
	return false
}

// Under reports whether the dotted taxonomy key is parent or lies below it.
func Under(key, parent string) bool {
	return key == parent || strings.HasPrefix(key, parent+".")
}
