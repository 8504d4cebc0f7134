from recsys_features.bronze.main import main

main()
