from recsys_features.main import main

main()
